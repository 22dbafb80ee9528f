#!/usr/bin/env bash
# Checks the system prerequisites and installs the missing ones on Debian/Ubuntu when run
# as root (otherwise it prints the exact command to run):
#   - clang + libclang: RocksDB's Rust bindings are generated with bindgen at build time;
#   - PostgreSQL server binaries (initdb, pg_ctl, postgres): tests start throwaway servers.
set -euo pipefail

missing=()
if ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 && ! ls /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1 \
   && [ -z "${LIBCLANG_PATH:-}" ]; then
  missing+=(libclang-dev clang)
fi
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install the Rust toolchain from https://rustup.rs" >&2
  exit 1
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "missing system packages: ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing them with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
else
  echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
