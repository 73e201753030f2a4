#!/usr/bin/env bash
# Operator scale benchmark on a fresh local API server: prints a table of
# time-to-children (p50/p99), reconciles/s, operator peak RSS and writes
# during an idle window. Figures only; nothing is asserted.
#
#   tests/operator/bench.sh [--stacks 100,500] [--idle-seconds 60]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--stacks 100,500 --idle-seconds 60)

echo "== building (release)"
cargo build -q --release -p flightdeck-operator --bin flightdeck-operator
cargo bench -q -p flightdeck-operator --bench scale --no-run

timeout --kill-after=30 "${OPERATOR_BENCH_TIMEOUT:-2400}" tests/control-plane/with-cluster.sh \
  cargo bench -q -p flightdeck-operator --bench scale -- \
  --operator "${CARGO_TARGET_DIR:-$ROOT/target}/release/flightdeck-operator" "${args[@]}"
