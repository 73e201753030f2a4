#!/usr/bin/env bash
# tests/crd/run.sh - the InferenceStack API against a real API server.
#
# Builds `flightdeck`, checks the checked-in CRD copies are current, then in a
# fresh local control plane (tests/control-plane/with-cluster.sh, or the
# cluster of FLIGHTDECK_TEST_KUBECONFIG) checks that:
#   - the generated CRD installs and is Established;
#   - every example in examples/ is accepted, and defaults are applied;
#   - the schema rejects bad values (enum, minimum, pattern) with field paths;
#   - every object `flightdeck render` prints for every example is accepted
#     by server-side apply (protocol on ports, field names, shapes).
# Exits non-zero on the first failure. Loopback only, bounded by timeouts.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
target_dir=${CARGO_TARGET_DIR:-$ROOT/target}
export CARGO_TARGET_DIR=$target_dir

if [ "${1:-}" != "--inside" ]; then
  echo "== building flightdeck"
  cargo build -q -p flightdeck-cli
  echo "== checked-in CRD copies match the types"
  "$target_dir"/debug/flightdeck crd --check
  exec timeout 600 tests/control-plane/with-cluster.sh "$0" --inside
fi

: "${KUBECONFIG:?run through tests/control-plane/with-cluster.sh}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ns=crd-test-$RANDOM
fail() { echo "FAIL: $*" >&2; exit 1; }
k() { kubectl "$@" 2>&1 | grep -v -i "version difference\|skew" || true; }

echo "== installing the CRD"
"$target_dir"/debug/flightdeck crd >"$work/crd.yaml"
# --validate=false: kubectl validates client-side against servers without
# server-side field validation (< 1.25), and their OpenAPI does not know
# x-kubernetes-validations (CEL); such servers drop the rules themselves.
kubectl apply --validate=false -f "$work/crd.yaml" >/dev/null
kubectl wait --for=condition=Established --timeout=60s crd/inferencestacks.flightdeck.dev >/dev/null
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

echo "== rendered objects pass server-side apply"
for example in examples/*.yaml; do
  "$target_dir"/debug/flightdeck render -f "$example" -n "$ns" >"$work/rendered.yaml"
  kubectl apply --server-side --dry-run=server --field-manager=flightdeck-operator \
    -f "$work/rendered.yaml" >"$work/apply.log" 2>&1 \
    || { cat "$work/apply.log" >&2; fail "rendered objects of $example rejected"; }
done

echo "== render fails with field paths on an invalid stack"
sed 's/maxBatchSize: 4/maxBatchSize: 0/' examples/quickstart.yaml >"$work/invalid.yaml"
if "$target_dir"/debug/flightdeck render -f "$work/invalid.yaml" >/dev/null 2>"$work/err"; then
  fail "render accepted an invalid stack"
fi
grep -q "spec.applications.smollm2.readerConfig.maxBatchSize" "$work/err" || fail "no field path in: $(cat "$work/err")"

echo "PASS: tests/crd"
