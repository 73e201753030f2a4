#!/usr/bin/env bash
# The cluster half of tests/operator/bench.sh, run by
# tests/control-plane/with-cluster.sh (KUBECONFIG set, kubectl on PATH):
# installs the CRD, then runs the benchmark driver against OPERATOR.
#
#   tests/operator/bench-in-cluster.sh OPERATOR [scale ARGS...]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
operator=${1:?usage: tests/operator/bench-in-cluster.sh OPERATOR [ARGS...]}
shift
: "${KUBECONFIG:?run through tests/control-plane/with-cluster.sh}"

tests/lib/crd.sh install
exec tests/lib/build.sh cargo bench -q -p flightdeck-operator --bench scale -- --operator "$operator" "$@"
