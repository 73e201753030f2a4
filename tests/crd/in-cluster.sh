#!/usr/bin/env bash
# The cluster half of tests/crd/run.sh, run by tests/control-plane/with-cluster.sh
# (KUBECONFIG set, kubectl on PATH):
#
#   tests/crd/in-cluster.sh BIN_DIR     (BIN_DIR: tests/lib/build.sh's output)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
bin=${1:?usage: tests/crd/in-cluster.sh BIN_DIR}
: "${KUBECONFIG:?run through tests/control-plane/with-cluster.sh}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ns=crd-test-$RANDOM
fail() { echo "FAIL: $*" >&2; exit 1; }

echo "== installing the CRD"
tests/lib/crd.sh install
kubectl create namespace "$ns" >/dev/null

echo "== examples are accepted and defaulted"
for example in examples/*.yaml; do
  # Into the test namespace, whatever the example names.
  sed '/^  namespace:/d' "$example" >"$work/example.yaml"
  kubectl -n "$ns" apply --server-side --field-manager=crd-test -f "$work/example.yaml" >/dev/null \
    || fail "$example rejected"
done
replicas=$(kubectl -n "$ns" get inferencestack quickstart -o jsonpath='{.spec.applications.smollm2.readerConfig.tensorParallelSize}')
[ "$replicas" = 1 ] || fail "tensorParallelSize default not applied (got '$replicas')"
port=$(kubectl -n "$ns" get istack quickstart -o jsonpath='{.spec.gateway.service.port}')
[ "$port" = 8080 ] || fail "gateway.service.port default not applied (got '$port')"
startup=$(kubectl -n "$ns" get istack quickstart -o jsonpath='{.spec.applications.smollm2.readerConfig.startupTimeoutSeconds}')
[ "$startup" = 1800 ] || fail "startupTimeoutSeconds default not applied (got '$startup')"
task=$(kubectl -n "$ns" get istack quickstart -o jsonpath='{.spec.applications.smollm2.readerConfig.task}')
[ "$task" = generate ] || fail "task default not applied (got '$task')"
kubectl get inferencestacks -n "$ns" >/dev/null || fail "listing by plural"
kubectl get flightdeck -n "$ns" >/dev/null || fail "listing by category"

echo "== schema rejects bad values with field paths"
reject() { # NAME EXPECTED-SUBSTRING YAML-SPEC
  local name=$1 expected=$2 spec=$3 out
  printf 'apiVersion: flightdeck.dev/v1alpha1\nkind: InferenceStack\nmetadata: {name: %s}\nspec:\n%s\n' "$name" "$spec" >"$work/bad.yaml"
  # --validate=false: the API server itself must refuse it.
  if out=$(kubectl -n "$ns" apply --validate=false -f "$work/bad.yaml" 2>&1); then
    fail "$name was accepted"
  fi
  grep -q -- "$expected" <<<"$out" || fail "$name: expected '$expected' in: $out"
}
reject bad-engine 'spec.applications.a.engine' '  applications:
    a: {engine: ollama, readerConfig: {modelName: m}}'
reject bad-batch 'spec.applications.a.readerConfig.maxBatchSize' '  applications:
    a: {engine: vllm, readerConfig: {modelName: m, maxBatchSize: 0}}'
reject bad-group 'spec.applications.a.consumerGroups' '  applications:
    a: {engine: vllm, consumerGroups: [Not_A_Label], readerConfig: {modelName: m}}'
reject bad-port 'spec.gateway.service.port' '  gateway: {service: {port: 70000}}'
reject bad-replicas 'spec.gateway.replicas' '  gateway: {replicas: -1}'
reject no-model 'spec.applications.a.readerConfig.modelName' '  applications:
    a: {engine: vllm, readerConfig: {}}'
reject bad-task 'spec.applications.a.readerConfig.task' '  applications:
    a: {engine: vllm, readerConfig: {modelName: m, task: classify}}'
reject short-startup 'spec.applications.a.readerConfig.startupTimeoutSeconds' '  applications:
    a: {engine: vllm, readerConfig: {modelName: m, startupTimeoutSeconds: 10}}'
reject bad-drain 'spec.gateway.drainTimeoutSeconds' '  gateway: {drainTimeoutSeconds: -1}'

echo "== rendered objects pass server-side apply"
for example in examples/*.yaml; do
  "$bin/flightdeck" render -f "$example" -n "$ns" >"$work/rendered.yaml"
  kubectl apply --server-side --dry-run=server --field-manager=flightdeck-operator \
    -f "$work/rendered.yaml" >"$work/apply.log" 2>&1 \
    || { cat "$work/apply.log" >&2; fail "rendered objects of $example rejected"; }
done

echo "== render fails with field paths on an invalid stack"
sed 's/maxBatchSize: 4/maxBatchSize: 0/' examples/quickstart.yaml >"$work/invalid.yaml"
if "$bin/flightdeck" render -f "$work/invalid.yaml" >/dev/null 2>"$work/err"; then
  fail "render accepted an invalid stack"
fi
grep -q "spec.applications.smollm2.readerConfig.maxBatchSize" "$work/err" || fail "no field path in: $(cat "$work/err")"
# Fewer GPUs than tensorParallelSize: only validate() can relate the two.
sed 's/tensorParallelSize: 1/tensorParallelSize: 2/' examples/gpu-vllm.yaml >"$work/few-gpus.yaml"
if "$bin/flightdeck" render -f "$work/few-gpus.yaml" >/dev/null 2>"$work/err"; then
  fail "render accepted fewer GPUs than tensorParallelSize"
fi
grep -qF 'spec.applications.llama-1b.resources.limits["nvidia.com/gpu"]' "$work/err" \
  || fail "no GPU field path in: $(cat "$work/err")"

echo "PASS: tests/crd"
