#!/usr/bin/env bash
# Proves that scripts/prereqs.sh detects what the build needs by what it is, not by a name
# that merely looks alike: on a throwaway root that has only `libclang-cpp.so.14` (as many
# fresh machines do) it must ask for libclang; with `libclang-14.so.1` it must not.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/lib/llvm-14/lib" "$root/usr/lib/postgresql/15/bin" "$root/usr/sbin" \
  "$root/usr/bin" "$root/opt/apitap/moto/bin" "$root/usr/lib/rabbitmq/bin"
touch "$root/usr/lib/rabbitmq/bin/rabbitmq-server"
touch "$root/usr/lib/llvm-14/lib/libclang-cpp.so.14" "$root/usr/lib/postgresql/15/bin/initdb" \
  "$root/usr/sbin/mariadbd" "$root/usr/bin/chromium" "$root/opt/apitap/moto/bin/moto_server"

out=$(PREREQS_ROOT="$root" scripts/prereqs.sh --check 2>&1) && {
  echo "prereqs selftest: a root with only libclang-cpp passed the check" >&2
  exit 1
}
grep -q "libclang-dev" <<<"$out" || { echo "prereqs selftest: expected libclang-dev in: $out" >&2; exit 1; }
grep -q "postgresql" <<<"$out" && { echo "prereqs selftest: initdb was present: $out" >&2; exit 1; }

touch "$root/usr/lib/llvm-14/lib/libclang-14.so.1"
PREREQS_ROOT="$root" scripts/prereqs.sh --check || {
  echo "prereqs selftest: a root with libclang-14.so.1 failed the check" >&2
  exit 1
}
# Without the file $1 the check fails and asks for the package $2, but not for the package
# $3 (when given), whose files are all there.
missing() {
  local out
  rm "$root/$1"
  out=$(PREREQS_ROOT="$root" scripts/prereqs.sh --check 2>&1) && { echo "prereqs selftest: no ${1##*/} passed" >&2; exit 1; }
  grep -q "$2" <<<"$out" || { echo "prereqs selftest: expected $2 in: $out" >&2; exit 1; }
  if [[ -n "${3:-}" ]] && grep -q "$3" <<<"$out"; then
    echo "prereqs selftest: $3 was asked for with its files there: $out" >&2
    exit 1
  fi
}
missing usr/lib/postgresql/15/bin/initdb postgresql mariadb-server
missing usr/sbin/mariadbd mariadb-server chromium
missing usr/bin/chromium chromium
touch "$root/usr/sbin/mariadbd" "$root/usr/bin/chromium"
missing opt/apitap/moto/bin/moto_server python3-venv rabbitmq-server
missing usr/lib/rabbitmq/bin/rabbitmq-server rabbitmq-server
echo "prereqs selftest passed" >&2
