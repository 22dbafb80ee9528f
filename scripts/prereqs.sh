#!/usr/bin/env bash
# Checks the system prerequisites and installs the missing ones on Debian/Ubuntu when run
# as root (otherwise it prints the exact command to run):
#   - clang + libclang: RocksDB's Rust bindings are generated with bindgen at build time;
#   - PostgreSQL server binaries (initdb, pg_ctl, postgres): tests start throwaway servers;
#   - MariaDB server binaries (mariadb-install-db, mariadbd): the MySQL sink's tests start
#     throwaway servers too;
#   - Chromium: the console test opens the coordinator's web console in headless Chromium.
#
#   scripts/prereqs.sh           check, and install what is missing
#   scripts/prereqs.sh --check   only report what is missing (exit 1 if anything is)
#
# PREREQS_ROOT (default /) is the file-system root the checks look in, so that
# scripts/prereqs-selftest.sh can prove the detection on a root without libclang.
set -euo pipefail

check_only=false
[ "${1:-}" = "--check" ] && check_only=true
root="${PREREQS_ROOT:-}"

# True if any of the glob patterns names an existing file.
any_exists() {
  local f
  for f in "$@"; do
    [ -e "$f" ] && return 0
  done
  return 1
}

# bindgen (through clang-sys) loads `libclang.so`, `libclang-N.so` or `libclang.so.N`;
# `libclang-cpp.so.N` is a different library that many machines have without libclang.
has_libclang() {
  if [ -n "${LIBCLANG_PATH:-}" ] && [ -z "$root" ]; then
    any_exists "$LIBCLANG_PATH"/libclang.so* "$LIBCLANG_PATH"/libclang-[0-9]*.so* && return 0
  fi
  any_exists "$root"/usr/lib/llvm-*/lib/libclang.so* "$root"/usr/lib/llvm-*/lib/libclang-[0-9]*.so* \
    "$root"/usr/lib/*-linux-gnu/libclang.so* "$root"/usr/lib/*-linux-gnu/libclang-[0-9]*.so*
}
has_initdb() {
  if [ -z "$root" ] && command -v initdb >/dev/null 2>&1; then
    return 0
  fi
  any_exists "$root"/usr/lib/postgresql/*/bin/initdb "$root"/usr/local/bin/initdb
}
has_mariadbd() {
  if [ -z "$root" ] && command -v mariadbd >/dev/null 2>&1; then
    return 0
  fi
  any_exists "$root"/usr/sbin/mariadbd "$root"/usr/local/bin/mariadbd
}

has_chromium() {
  if [ -z "$root" ] && command -v chromium >/dev/null 2>&1; then
    return 0
  fi
  any_exists "$root"/usr/bin/chromium
}

missing=()
has_libclang || missing+=(libclang-dev clang)
has_initdb || missing+=(postgresql)
has_mariadbd || missing+=(mariadb-server)
has_chromium || missing+=(chromium)
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install the Rust toolchain from https://rustup.rs" >&2
  exit 1
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "missing system packages: ${missing[*]}" >&2
if $check_only; then
  exit 1
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing them with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
else
  echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
