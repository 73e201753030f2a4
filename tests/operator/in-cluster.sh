#!/usr/bin/env bash
# Runs inside a started cluster (KUBECONFIG set, kubectl on PATH): installs
# the CRD and RBAC, makes a kubeconfig for the operator's ServiceAccount, and
# runs the end-to-end scenarios.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$ROOT"
: "${KUBECONFIG:?KUBECONFIG must be set by the cluster harness}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== installing the CRD"
if cargo run -q -p flightdeck-cli -- crd >"$work/crd.yaml" 2>"$work/crd.err" && [ -s "$work/crd.yaml" ]; then
  # 1.20 does not know x-kubernetes-validations (CEL): skip client-side
  # validation; the API server drops the field and enforces the rest.
  kubectl apply --validate=false -f "$work/crd.yaml" >/dev/null
elif [ -d config/crd ]; then
  kubectl apply -k config/crd >/dev/null
else
  echo "(no 'flightdeck crd' yet: the tests install the CRD from the Rust types)"
fi

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
