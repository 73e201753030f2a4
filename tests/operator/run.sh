#!/usr/bin/env bash
# Operator scenarios against a real API server (kube-apiserver 1.20 + etcd +
# kube-controller-manager on loopback): builds the operator and its tests,
# starts a fresh cluster, and there (tests/operator/in-cluster.sh) installs the
# CRD and config/rbac and runs crates/operator/tests/e2e.rs with the operator
# authenticated as the flightdeck-operator ServiceAccount. Exits non-zero on
# failure.
#
#   tests/operator/run.sh [TEST-NAME-FILTER]
#
# Environment: OPERATOR_TEST_TIMEOUT (seconds, default 1200),
# OPERATOR_TEST_THREADS (parallel scenarios, default 3).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

echo "== building the end-to-end tests (and the flightdeck-operator binary they run)"
cargo test -q -p flightdeck-operator --test e2e --no-run

exec tests/control-plane/with-cluster.sh --timeout "${OPERATOR_TEST_TIMEOUT:-1200}" \
  tests/operator/in-cluster.sh "$@"
