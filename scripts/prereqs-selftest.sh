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
rm "$root/usr/lib/postgresql/15/bin/initdb"
out=$(PREREQS_ROOT="$root" scripts/prereqs.sh --check 2>&1) && { echo "prereqs selftest: no initdb passed" >&2; exit 1; }
grep -q "postgresql" <<<"$out" || { echo "prereqs selftest: expected postgresql in: $out" >&2; exit 1; }
grep -q "mariadb-server" <<<"$out" && { echo "prereqs selftest: mariadbd was present: $out" >&2; exit 1; }
rm "$root/usr/sbin/mariadbd"
out=$(PREREQS_ROOT="$root" scripts/prereqs.sh --check 2>&1) && { echo "prereqs selftest: no mariadbd passed" >&2; exit 1; }
grep -q "mariadb-server" <<<"$out" || { echo "prereqs selftest: expected mariadb-server in: $out" >&2; exit 1; }
grep -q "chromium" <<<"$out" && { echo "prereqs selftest: chromium was present: $out" >&2; exit 1; }
rm "$root/usr/bin/chromium"
out=$(PREREQS_ROOT="$root" scripts/prereqs.sh --check 2>&1) && { echo "prereqs selftest: no chromium passed" >&2; exit 1; }
grep -q "chromium" <<<"$out" || { echo "prereqs selftest: expected chromium in: $out" >&2; exit 1; }
touch "$root/usr/sbin/mariadbd" "$root/usr/bin/chromium"
rm "$root/opt/apitap/moto/bin/moto_server"
out=$(PREREQS_ROOT="$root" scripts/prereqs.sh --check 2>&1) && { echo "prereqs selftest: no moto_server passed" >&2; exit 1; }
grep -q "python3-venv" <<<"$out" || { echo "prereqs selftest: expected python3-venv in: $out" >&2; exit 1; }
grep -q "rabbitmq-server" <<<"$out" && { echo "prereqs selftest: rabbitmq-server was present: $out" >&2; exit 1; }
rm "$root/usr/lib/rabbitmq/bin/rabbitmq-server"
out=$(PREREQS_ROOT="$root" scripts/prereqs.sh --check 2>&1) && { echo "prereqs selftest: no rabbitmq-server passed" >&2; exit 1; }
grep -q "rabbitmq-server" <<<"$out" || { echo "prereqs selftest: expected rabbitmq-server in: $out" >&2; exit 1; }
echo "prereqs selftest passed" >&2
