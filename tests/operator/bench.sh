#!/usr/bin/env bash
# Operator scale benchmark on a fresh local API server: prints a table of
# time-to-children (p50/p99), reconciles/s, operator peak RSS and writes
# during an idle window. Figures only; nothing is asserted.
#
#   tests/operator/bench.sh [--stacks 100,500] [--idle-seconds 60]
#
# The operator is the release binary of tests/lib/build.sh; the benchmark
# driver (crates/operator/benches/scale.rs) is built with the same flags, so
# it reuses that build's dependencies. Environment: OPERATOR_BENCH_TIMEOUT
# (seconds in the cluster, default 2400).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--stacks '100,500' --idle-seconds 60)

bin=$(tests/lib/build.sh)
echo "== building the benchmark driver"
tests/lib/build.sh cargo bench -q -p flightdeck-operator --bench scale --no-run

exec tests/control-plane/with-cluster.sh --timeout "${OPERATOR_BENCH_TIMEOUT:-2400}" \
  tests/operator/bench-in-cluster.sh "$bin/flightdeck-operator" "${args[@]}"
