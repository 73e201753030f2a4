#!/usr/bin/env bash
# The cluster half of tests/operator/run.sh, run by
# tests/control-plane/with-cluster.sh (KUBECONFIG set, kubectl on PATH):
# installs the CRD and RBAC, makes a kubeconfig for the operator's
# ServiceAccount, and runs the end-to-end scenarios.
#
#   tests/operator/in-cluster.sh [TEST-NAME-FILTER]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
: "${KUBECONFIG:?KUBECONFIG must be set by the cluster harness}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== installing the CRD"
tests/lib/crd.sh install

echo "== installing config/rbac"
kubectl create namespace flightdeck-system --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl apply -k config/rbac >/dev/null

echo "== credentials of the flightdeck-operator ServiceAccount"
token=""
for _ in $(seq 1 150); do
  secret=$(kubectl -n flightdeck-system get serviceaccount flightdeck-operator \
             -o jsonpath='{.secrets[0].name}' 2>/dev/null || true)
  if [ -n "$secret" ]; then
    token=$(kubectl -n flightdeck-system get secret "$secret" -o jsonpath='{.data.token}' 2>/dev/null | base64 -d || true)
  fi
  [ -n "$token" ] && break
  sleep 0.2
done
if [ -z "$token" ]; then
  # Newer clusters no longer create token Secrets: ask for a bound token.
  token=$(kubectl -n flightdeck-system create token flightdeck-operator --duration=2h)
fi
server=$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.server}')
ca=$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
cat >"$work/operator.kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: "$server", certificate-authority-data: "$ca"}
users:
- name: flightdeck-operator
  user: {token: "$token"}
contexts:
- name: operator
  context: {cluster: test, user: flightdeck-operator, namespace: flightdeck-system}
current-context: operator
KUBECONFIG
export FLIGHTDECK_OPERATOR_KUBECONFIG="$work/operator.kubeconfig"
if [ "$(KUBECONFIG=$FLIGHTDECK_OPERATOR_KUBECONFIG kubectl auth can-i list inferencestacks.flightdeck.dev --all-namespaces 2>/dev/null)" != yes ]; then
  echo "the operator's ServiceAccount cannot list inferencestacks: RBAC not effective" >&2
  exit 1
fi

echo "== end-to-end scenarios (operator runs as system:serviceaccount:flightdeck-system:flightdeck-operator)"
cargo test -q -p flightdeck-operator --test e2e -- --ignored \
  --test-threads "${OPERATOR_TEST_THREADS:-3}" "$@"
