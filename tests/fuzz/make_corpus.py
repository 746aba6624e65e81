#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets into tests/fuzz/corpus/ (committed; rerun only
to change the seeds). Frames are built here the way encode_frame builds them: magic, command
padded with NULs, little-endian length, first 4 bytes of SHA-256d(payload), payload.

fuzz_decoder inputs start with two bytes: the chunk-size seed and the config byte (its low
two bits pick the magic: 0 = Bitcoin's F9 BE B4 D9)."""

import hashlib
import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parent / "corpus"
MAGIC = bytes.fromhex("f9beb4d9")


def frame(command: bytes, payload: bytes, magic: bytes = MAGIC, length=None, checksum=None):
    digest = hashlib.sha256(hashlib.sha256(payload).digest()).digest()
    return (magic + command.ljust(12, b"\0")
            + struct.pack("<I", len(payload) if length is None else length)
            + (digest[:4] if checksum is None else checksum) + payload)


def decoder_seeds():
    version = bytes(range(86))
    return {
        "ping": b"\x00\x00" + frame(b"ping", bytes(8)),
        "verack-empty": b"\x07\x00" + frame(b"verack", b""),
        "version-86": b"\x45\x08" + frame(b"version", version),
        "two-frames": b"\x03\x10" + frame(b"ping", b"\x01" * 8) + frame(b"pong", b"\x01" * 8),
        "garbage-then-frame": b"\x11\x00" + b"hello\xf9\xbe\xb4world" + frame(b"inv", b"\x00"),
        "garbage-only": b"\x20\x00" + bytes(range(0, 256, 7)),
        "bad-checksum": b"\x05\x00" + frame(b"tx", b"abc", checksum=b"\0\0\0\0"),
        "bad-command": b"\x06\x00" + frame(b"pi\x01g", b"xyz") + frame(b"ping", b""),
        "command-12": b"\x09\x00" + frame(b"abcdefghijkl", b"12"),
        "oversized-4097": b"\x01\x00" + frame(b"block", b"", length=4097),
        "declared-4gib": b"\x02\x00" + frame(b"block", b"", length=0xFFFFFFFF),
        "truncated-payload": b"\x0a\x00" + frame(b"headers", b"h" * 40)[:40],
        "repeated-magic": b"\x04\x01" + b"\xf9\xf9\xf9" + frame(b"ping", b"", bytes.fromhex("f9f9bef9")),
        "magic-prefix-tail": b"\x00\x00" + frame(b"ping", b"") + b"\xf9\xbe\xb4",
    }


def host_seeds():
    return {
        "v4-port": b"127.0.0.1:8333",
        "v6-port": b"[::1]:1",
        "short-name": b"a:0",
        "port-70000": b"x:70000",
        "bare-name": b"seed.bitcoin.sipa.be",
        "bare-v6": b"2001:db8::1",
        "v6-scope": b"[fe80::1%1]:8333",
        "empty-port": b"host:",
        "unclosed-bracket": b"[::1:8333",
        "space": b"my host:1",
        "list": b"a:1\nb:2\nA:1\n\n[::1]:3\nbad host\nc",
        "pair": b"node.example\n18333",
        "long-name": b"a" * 254 + b":1",
        # Found by fuzz_hosts; they fail until host.cpp is fixed (see the branch's report).
        # An IPv6 name is checked by inet_pton on its C string: a NUL ends the check early.
        "crash-nul-in-ipv6": b"::1\0",
        # Asio accepts any scope id after '%', so the name may hold spaces ...
        "crash-space-in-scope-id": b"::1%a b",
        # ... or a ']', and then "[::1%]x]:8333" from to_string() does not parse back.
        "crash-bracket-in-scope-id": b"::1%]x",
    }


def write(target, seeds):
    out = ROOT / target
    out.mkdir(parents=True, exist_ok=True)
    for name, data in seeds.items():
        (out / name).write_bytes(data)


if __name__ == "__main__":
    write("fuzz_decoder", decoder_seeds())
    write("fuzz_hosts", host_seeds())
