#!/usr/bin/env bash
# The operator half of `make demo`, run by tests/control-plane/with-cluster.sh
# (KUBECONFIG points at a fresh kube-apiserver, kubectl is on PATH).
#
#   tests/demo/in-cluster.sh BIN_DIR     (BIN_DIR: tests/lib/build.sh's output)
#
# Installs the CRD (tests/lib/crd.sh: `make install`), starts the operator in the
# background, applies examples/quickstart.yaml and shows what the operator made
# of it. Pods stay Pending (the local control plane has no kubelet): this half
# shows the objects and the status; the second half of the demo runs the stack.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
# shellcheck source=tests/demo/lib.sh
. "$ROOT/tests/demo/lib.sh"

bin=${1:?usage: in-cluster.sh BIN_DIR}
operator=$bin/flightdeck-operator
namespace=flightdeck-demo
stack=quickstart
log_dir=${FLIGHTDECK_DEMO_LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/flightdeck-demo.XXXXXX")}
operator_log=$log_dir/operator.log
operator_pid=

stop_operator() {
  [ -n "$operator_pid" ] || return 0
  if kill -0 "$operator_pid" 2>/dev/null; then
    kill -TERM "$operator_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$operator_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$operator_pid" 2>/dev/null || true
  fi
  wait "$operator_pid" 2>/dev/null || true
  operator_pid=
}

on_exit() {
  local rc=$?
  if [ "$rc" != 0 ] && [ -s "$operator_log" ]; then
    echo "--- last lines of the operator log ($operator_log):" >&2
    tail -n 40 "$operator_log" >&2
  fi
  stop_operator
  exit "$rc"
}
trap on_exit EXIT

step "Cluster: $(kubectl version -o json 2>/dev/null | python3 -c 'import json,sys; v=json.load(sys.stdin)["serverVersion"]; print("kube-apiserver", v["gitVersion"])') at $(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')"

step "Installing the InferenceStack CRD (make install: config/crd)"
show tests/lib/crd.sh install

step "Starting the operator in the background (watches.yaml; log: $operator_log)"
admin_port=$(free_port)
say "flightdeck-operator --watches watches.yaml --no-leader-election --admin-listen 127.0.0.1:$admin_port"
RUST_LOG=${RUST_LOG:-info} "$operator" --watches watches.yaml --no-leader-election \
  --admin-listen "127.0.0.1:$admin_port" --log-format text >"$operator_log" 2>&1 &
operator_pid=$!
operator_ready() {
  kill -0 "$operator_pid" 2>/dev/null || fail "the operator exited early"
  curl -fsS -o /dev/null "http://127.0.0.1:$admin_port/healthz" 2>/dev/null
}
wait_until 60 "operator /healthz" operator_ready
say "operator pid $operator_pid is healthy (http://127.0.0.1:$admin_port/healthz)"

step "Creating namespace $namespace and applying examples/quickstart.yaml"
show kubectl create namespace "$namespace"
show kubectl apply -n "$namespace" -f examples/quickstart.yaml

step "Waiting (at most 90s) for the operator to create the stack's objects"
children_exist() {
  kill -0 "$operator_pid" 2>/dev/null || fail "the operator exited"
  kubectl get -n "$namespace" deployment "$stack-gateway" "$stack-smollm2" >/dev/null 2>&1 &&
    kubectl get -n "$namespace" configmap "$stack-gateway" >/dev/null 2>&1 &&
    kubectl get -n "$namespace" secret "$stack-reader-token" >/dev/null 2>&1 &&
    kubectl get -n "$namespace" service "$stack-gateway" "$stack-gateway-readers" >/dev/null 2>&1 &&
    kubectl get -n "$namespace" serviceaccount "$stack-flightdeck" >/dev/null 2>&1
}
started=$SECONDS
wait_until 90 "the stack's Deployments, Services, ConfigMap, Secret and ServiceAccount" children_exist
say "created in $((SECONDS - started))s"
status_written() {
  [ -n "$(kubectl get -n "$namespace" istack "$stack" -o jsonpath='{.status.conditions[*].type}')" ]
}
wait_until 60 "status conditions on the stack" status_written

step "The stack as kubectl shows it (the CRD's printer columns)"
show kubectl get -n "$namespace" istack -o wide

step "Objects the operator created (label flightdeck.dev/stack=$stack)"
show kubectl get -n "$namespace" deployments,services,configmaps,secrets,serviceaccounts \
  -l "flightdeck.dev/stack=$stack"

step "Routing table the gateway reads (ConfigMap $stack-gateway, key gateway.json)"
kubectl get -n "$namespace" configmap "$stack-gateway" -o jsonpath='{.data.gateway\.json}' | sed 's/^/    /'
echo

step "Status conditions of the stack"
kubectl get -n "$namespace" istack "$stack" \
  -o jsonpath='{range .status.conditions[*]}{.type}={.status} ({.reason}): {.message}{"\n"}{end}' | sed 's/^/    /'
say "gateway endpoint: $(kubectl get -n "$namespace" istack "$stack" -o jsonpath='{.status.gateway.endpoint}')"
say "Pods stay Pending here (no kubelet on the local control plane), so Ready is False; the next step runs the same stack as local processes."

step "Operator log (last 10 lines)"
tail -n 10 "$operator_log" | sed 's/^/    /'
stop_operator
