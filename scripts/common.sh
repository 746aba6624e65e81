# Shared by scripts/demo, scripts/test and scripts/bench: install what is missing, build.
# Sourced, not run.

P2P_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
P2P_PACKAGES=(libboost1.81-dev libboost-json1.81-dev libc-ares-dev pkg-config libfmt-dev libssl-dev catch2 cmake ninja-build g++)

# Installs the Debian packages given (default: the build's) that are not installed yet;
# runs apt-get update only when something is missing.
p2p_ensure_packages() {
  local wanted=("$@")
  ((${#wanted[@]})) || wanted=("${P2P_PACKAGES[@]}")
  local missing=()
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  echo "p2p: installing ${missing[*]}" >&2
  local sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

# p2p_build DIR [cmake args...]: configures (once) and builds DIR with Ninja, two jobs.
p2p_build() {
  local dir="$1"
  shift
  if [[ ! -f "$dir/build.ninja" ]]; then
    cmake -S "$P2P_ROOT" -B "$dir" -G Ninja "$@" >/dev/null
  fi
  cmake --build "$dir" -j "${P2P_JOBS:-2}"
}
