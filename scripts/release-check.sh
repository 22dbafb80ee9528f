#!/usr/bin/env bash
# Runs the cluster tests of the testbed, `apitap-chaos up` and apitapctl against the release
# binaries, as users build them: `cargo build --release` (no fail points), then the named
# cluster tests with APITAP_BIN_DIR pointing at target/release, so every process they start
# (coordinators, workers, apitapctl, apitap-chaos) is a release build. The test harnesses
# themselves are built in the debug profile with scripts/test.sh's features, so they reuse
# its build.
#
#   scripts/release-check.sh                 # the default tests below
#   scripts/release-check.sh playground tls  # only these test files of cluster-tests/tests
#
# Not part of CI (a release build of RocksDB and DataFusion takes long); run it before a
# release, or after changing the testbed, `up` or apitapctl's cluster commands.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/prereqs.sh
start=$(date +%s)
default_tests=(playground membership raft_cluster end_to_end restart tls)
tests=("$@")
[ ${#tests[@]} -eq 0 ] && tests=("${default_tests[@]}")

cargo build --release --workspace --bins
target="${CARGO_TARGET_DIR:-$PWD/target}"
export APITAP_BIN_DIR="$target/release"
echo "testing the release binaries in $APITAP_BIN_DIR" >&2

features=(--features apitap-worker/failpoints)
for t in "${tests[@]}"; do
  cargo test --workspace "${features[@]}" --test "$t"
done
echo "release check passed (${tests[*]}) in $(( $(date +%s) - start ))s" >&2
