#!/usr/bin/env bash
# Builds the workspace, starts a local cluster (coordinator, two workers, the mock API),
# submits examples/pipelines/demo.yaml, shows its progress and prints what landed in the
# SQLite file out/demo/demo.db. Logs: out/demo/logs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/prereqs.sh
echo "building (the first build compiles RocksDB and DataFusion: 15-30 minutes on 2 cores)" >&2
cargo build --workspace --bins
exec cargo run -q -p apitap-chaos --bin apitap-chaos -- demo "$@"
