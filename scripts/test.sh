#!/usr/bin/env bash
# Runs the whole test suite: unit tests, openraft's storage suite, apitapctl's bad-input
# corpus, and the cluster tests (real coordinator/worker processes, a throwaway PostgreSQL,
# the mock API). The cluster tests need the binaries, so they are built first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/prereqs-selftest.sh
scripts/prereqs.sh
start=$(date +%s)
# One feature set for both commands (so `cargo test` reuses the build): the worker's fail
# points are on, for the crash-at-commit cluster tests (docs/chaos.md).
features=(--features apitap-worker/failpoints)
cargo build --workspace --bins --tests "${features[@]}"
# --no-fail-fast: every test binary runs even when one fails, so a report is complete.
cargo test --workspace --no-fail-fast "${features[@]}" "$@"
echo "test suite passed in $(( $(date +%s) - start ))s" >&2
