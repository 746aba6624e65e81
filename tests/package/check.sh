#!/usr/bin/env bash
# Package check: installs the library into a temporary prefix and builds the README's
# API tour against it as a separate project, the way a user would.
#   1. configure + build the library alone (tests, examples, benchmarks OFF), Release,
#      in a temporary build dir
#   2. cmake --install it into a temporary prefix (never /usr or /usr/local)
#   3. check the installed p2p_manager_targets.cmake: an include directory, and no empty
#      $<LINK_ONLY:> in the link interface
#   4. copy the first ```cpp block after the line "## API tour" in README.md, verbatim,
#      into tests/package/consumer's tour.cpp (in a temporary copy of the project)
#   5. configure the consumer with -DCMAKE_PREFIX_PATH=<prefix> (find_package must find the
#      installed package there, and compile with <prefix>/include) and build it
#   6. run the tour with `timeout 20`
# Criterion: the tour must compile, link, and RUN TO COMPLETION (exit status 0) within 20 s.
# Exits non-zero naming the step that failed, with the end of that step's log.
# Environment: README=path checks another README; P2P_JOBS build jobs (default 2);
# P2P_PACKAGE_KEEP=1 keeps the temporary directory.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../../scripts/common.sh"  # P2P_ROOT, p2p_ensure_packages
readme="${README:-$P2P_ROOT/README.md}"
jobs="${P2P_JOBS:-2}"
p2p_ensure_packages

work="$(mktemp -d "${TMPDIR:-/tmp}/p2p-package.XXXXXX")"
cleanup() {
  if [[ "${P2P_PACKAGE_KEEP:-0}" == 1 ]]; then echo "package: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
prefix="$work/prefix" lib_build="$work/lib-build" consumer="$work/consumer"
consumer_build="$work/consumer-build" logs="$work/logs"
mkdir -p "$prefix" "$logs"
start=$SECONDS

fail() {  # fail STEP MESSAGE [LOG]
  echo "package: FAILED at step '$1': $2" >&2
  if [[ -n "${3:-}" && -s "$3" ]]; then
    echo "---- last lines of $1's log ----" >&2
    tail -n 60 "$3" >&2
    echo "----" >&2
  fi
  exit 1
}

step() {  # step NAME COMMAND...: runs COMMAND with its output in a log
  local name="$1" t=$SECONDS
  shift
  echo "== package: $name"
  "$@" >"$logs/$name.log" 2>&1 || fail "$name" "'$*' exited with status $?" "$logs/$name.log"
  echo "   ok ($((SECONDS - t)) s)"
}

step configure-library cmake -S "$P2P_ROOT" -B "$lib_build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DP2P_BUILD_TESTS=OFF -DP2P_BUILD_EXAMPLES=OFF -DP2P_BUILD_BENCHMARKS=OFF
step build-library cmake --build "$lib_build" -j "$jobs"
step install-library cmake --install "$lib_build" --prefix "$prefix"

echo "== package: check-exported-target"
targets="$(find "$prefix" -name p2p_manager_targets.cmake -print -quit)"
[[ -n "$targets" ]] || fail check-exported-target "no p2p_manager_targets.cmake under $prefix"
props="$(sed -n '/^set_target_properties(p2p::manager PROPERTIES/,/^)/p' "$targets")"
echo "$props" | sed 's/^/   /'
grep -qF 'INTERFACE_INCLUDE_DIRECTORIES "${_IMPORT_PREFIX}/include"' <<<"$props" \
  || fail check-exported-target "p2p::manager has no INTERFACE_INCLUDE_DIRECTORIES \${_IMPORT_PREFIX}/include"
if grep -qF '$<LINK_ONLY:>' <<<"$props"; then
  fail check-exported-target "p2p::manager's INTERFACE_LINK_LIBRARIES has an empty \$<LINK_ONLY:>"
fi

echo "== package: extract-tour (from $readme)"
[[ -f "$readme" ]] || fail extract-tour "no such file: $readme"
mkdir -p "$consumer"
cp "$here/consumer/CMakeLists.txt" "$consumer/"
# The first ```cpp fence after the line "## API tour", up to its closing ```, fences excluded.
awk '
  /^## API tour[[:space:]]*$/ { section = 1; next }
  section && !inside && /^```cpp[[:space:]]*$/ { inside = 1; next }
  inside && /^```[[:space:]]*$/ { closed = 1; exit }
  inside { print }
  END { exit !closed }
' "$readme" >"$consumer/tour.cpp" \
  || fail extract-tour "no complete \`\`\`cpp block after '## API tour' in $readme"
[[ -s "$consumer/tour.cpp" ]] || fail extract-tour "the \`\`\`cpp block after '## API tour' is empty"
echo "   ok ($(wc -l <"$consumer/tour.cpp") lines)"

step configure-consumer cmake -S "$consumer" -B "$consumer_build" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON
found="$(sed -n 's/^p2p_manager_DIR:PATH=//p' "$consumer_build/CMakeCache.txt")"
[[ "$found" == "$prefix"/* ]] \
  || fail configure-consumer "find_package used '$found', not the package installed in $prefix"
grep -qF -- "$prefix/include" "$consumer_build/compile_commands.json" \
  || fail configure-consumer "tour.cpp is not compiled with $prefix/include"
step build-consumer cmake --build "$consumer_build" -j "$jobs"

echo "== package: run-tour (timeout 20 s)"
set +e
timeout -k 5 20 "$consumer_build/tour" 2>&1 | sed 's/^/   tour| /'
rc=${PIPESTATUS[0]}
set -e
if ((rc == 124 || rc == 137)); then
  fail run-tour "the tour did not finish within 20 s"
elif ((rc != 0)); then
  fail run-tour "the tour exited with status $rc"
fi
echo "== package: passed in $((SECONDS - start)) s"
