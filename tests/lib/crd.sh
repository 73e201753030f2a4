#!/usr/bin/env bash
# Usage: tests/lib/crd.sh install
# Installs the InferenceStack CRD into the cluster of KUBECONFIG the way users
# do, with `make install` (config/crd: the CRD `flightdeck crd` generates, kept
# current by `flightdeck crd --check`), then waits until it is Established
# and its kind is served. The one way the tests install the CRD; mk/packaging.mk
# says why `make install` applies it client-side without kubectl's schema
# check (Kubernetes before 1.25 refuses a server-side apply of its CEL rules).
# Idempotent: an installed CRD is updated in place.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
crd=inferencestacks.flightdeck.dev
timeout=60

if [ "${1:-}" != install ] || [ $# -ne 1 ]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
fi
: "${KUBECONFIG:?crd.sh: KUBECONFIG must name the cluster (run under tests/control-plane/with-cluster.sh)}"

make -s -C "$root" install >&2

# wait_for WHAT CMD...: poll CMD every 0.5 s until it succeeds, for $timeout s.
wait_for() {
  local what=$1 deadline=$((SECONDS + timeout))
  shift
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "crd.sh: $what not reached within ${timeout}s" >&2
      exit 1
    fi
    sleep 0.5
  done
}
established() {
  [ "$(kubectl get crd "$crd" -o 'jsonpath={.status.conditions[?(@.type=="Established")].status}')" = True ]
}
# Discovery may lag the Established condition by a moment.
wait_for "CRD $crd Established" established
wait_for "kind InferenceStack served" kubectl get inferencestacks.flightdeck.dev --all-namespaces
echo "crd.sh: $crd installed and served" >&2
