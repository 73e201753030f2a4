#!/usr/bin/env bash
# tests/crd/run.sh - the InferenceStack API against a real API server.
#
# Builds `flightdeck` (tests/lib/build.sh), checks the checked-in CRD copies
# are current, then runs tests/crd/in-cluster.sh in a fresh local control
# plane (tests/control-plane/with-cluster.sh, or the cluster of
# FLIGHTDECK_TEST_KUBECONFIG), which checks that:
#   - the CRD installs (tests/lib/crd.sh) and is Established;
#   - every example in examples/ is accepted, and defaults are applied;
#   - the schema rejects bad values (enum, minimum, pattern) with field paths;
#   - every object `flightdeck render` prints for every example is accepted
#     by server-side apply (protocol on ports, field names, shapes).
# Exits non-zero on the first failure. Loopback only, bounded by timeouts.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

bin=$(tests/lib/build.sh)
echo "== checked-in CRD copies match the types"
"$bin/flightdeck" crd --check
exec tests/control-plane/with-cluster.sh --timeout 600 tests/crd/in-cluster.sh "$bin"
