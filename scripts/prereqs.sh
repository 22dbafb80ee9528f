#!/usr/bin/env bash
# Checks the system prerequisites and installs the missing ones on Debian/Ubuntu when run
# as root (otherwise it prints the exact command to run):
#   - clang + libclang: RocksDB's Rust bindings are generated with bindgen at build time;
#   - PostgreSQL server binaries (initdb, pg_ctl, postgres): tests start throwaway servers;
#   - MariaDB server binaries (mariadb-install-db, mariadbd): the MySQL sink's tests start
#     throwaway servers too;
#   - moto_server (PyPI's moto[server], in a venv at /opt/apitap/moto): the files sink's
#     tests start a throwaway S3-compatible server (needs python3 and python3-venv).
#   - RabbitMQ (rabbitmq-server, the Debian package; its node scripts in /usr/lib/rabbitmq/bin):
#     the RabbitMQ sink's tests start throwaway nodes on ports of their own. The install
#     keeps the packaged service from starting (policy-rc.d), so no system node holds 5672;
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

# moto_server on PATH, or where install_moto puts it.
has_moto() {
  if [ -z "$root" ] && command -v moto_server >/dev/null 2>&1; then
    return 0
  fi
  any_exists "$root"/opt/apitap/moto/bin/moto_server
}
has_venv() {
  [ -z "$root" ] && command -v python3 >/dev/null 2>&1 && python3 -c 'import ensurepip, venv' 2>/dev/null
}
# The node scripts the testbed runs (`TempRabbitmq`), not the /usr/sbin wrapper.
has_rabbitmq() {
  if [ -z "$root" ] && [ -n "${APITAP_RABBITMQ_BIN:-}" ] && [ -x "$APITAP_RABBITMQ_BIN/rabbitmq-server" ]; then
    return 0
  fi
  any_exists "$root"/usr/lib/rabbitmq/bin/rabbitmq-server
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
need_moto=false
if ! has_moto; then
  need_moto=true
  has_venv || missing+=(python3 python3-venv)
fi
has_rabbitmq || missing+=(rabbitmq-server)
has_chromium || missing+=(chromium)
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install the Rust toolchain from https://rustup.rs" >&2
  exit 1
fi

install_moto() {
  if $check_only; then
    echo "missing: moto_server (PyPI moto[server])" >&2
    exit 1
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "install moto with: sudo python3 -m venv /opt/apitap/moto && sudo /opt/apitap/moto/bin/pip install 'moto[server]>=5.0.16,<6'" >&2
    exit 1
  fi
  echo "installing moto[server] into /opt/apitap/moto" >&2
  python3 -m venv /opt/apitap/moto
  /opt/apitap/moto/bin/pip install -q 'moto[server]>=5.0.16,<6' >/dev/null
}

if [ ${#missing[@]} -gt 0 ]; then
  echo "missing system packages: ${missing[*]}" >&2
  if $check_only; then
    exit 1
  fi
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing them with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    # Tests start servers of their own: keep the packages' services (RabbitMQ on 5672,
    # PostgreSQL, MariaDB) from starting, unless the machine has a policy already.
    policy=/usr/sbin/policy-rc.d
    own_policy=false
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=true
      trap 'rm -f "$policy"' EXIT
    fi
    apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
    if $own_policy; then rm -f "$policy" && trap - EXIT; fi
  else
    echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
if $need_moto; then
  install_moto
fi
