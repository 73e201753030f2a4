#!/usr/bin/env bash
# The checks of smoke.sh, run by with-cluster.sh (KUBECONFIG set, kubectl on
# PATH): one "ok"/"not ok" line per check, then "# N passed, M failed"; exits
# non-zero if any check fails. FLIGHTDECK_SMOKE_STATE names a file where the
# run dir and component PIDs are written for smoke.sh's teardown check.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DATA=$HERE/testdata
: "${KUBECONFIG:?run through tests/control-plane/smoke.sh}"

# For smoke.sh's teardown check: the run dir and each component's PID.
if [ -n "${FLIGHTDECK_SMOKE_STATE:-}" ] && [ -n "${FLIGHTDECK_CLUSTER_RUN_DIR:-}" ]; then
  {
    echo "$FLIGHTDECK_CLUSTER_RUN_DIR"
    for c in etcd kube-apiserver kube-controller-manager watchdog; do
      echo "$c $(cat "$FLIGHTDECK_CLUSTER_RUN_DIR/$c.pid") $(cat "$FLIGHTDECK_CLUSTER_RUN_DIR/$c.start")"
    done
  } >"$FLIGHTDECK_SMOKE_STATE"
fi

NS=flightdeck-smoke-$RANDOM
CRD=widgets.smoke.flightdeck.dev
# shellcheck source=lib/checks.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"

# wait_until SECONDS CMD...: poll CMD every 0.5 s until it succeeds.
wait_until() {
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}

server_version_is_1_20_2() {
  local version
  version=$(k get --raw /version | python3 -c 'import json, sys; print(json.load(sys.stdin)["gitVersion"])') || return 1
  echo "server version $version"
  [ -n "${FLIGHTDECK_TEST_KUBECONFIG:-}" ] || [ "$version" = v1.20.2 ]
}

rbac_is_enforced() {
  k create namespace "$NS" || return 1
  local admin other
  admin=$(k auth can-i create deployments -n "$NS")
  other=$(k auth can-i list secrets -n "$NS" --as="system:serviceaccount:$NS:default")
  echo "admin can create deployments: $admin; a service account can list secrets: $other"
  [ "$admin" = yes ] && [ "$other" = no ]
}

crd_is_established() {
  k apply -f "$DATA/widget-crd.yaml" && k wait --for=condition=Established --timeout=60s "crd/$CRD"
}

valid_custom_resource_is_created_with_defaults() {
  # Discovery of a new CRD may lag its Established condition by a moment.
  wait_until 30 k get widgets -n "$NS" || { echo "widgets never became discoverable"; return 1; }
  k apply -n "$NS" -f "$DATA/widget-valid.yaml" || return 1
  local replicas
  replicas=$(k get widget good -n "$NS" -o 'jsonpath={.spec.replicas}')
  echo "defaulted spec.replicas: $replicas"
  [ "$replicas" = 1 ]
}

status_is_a_subresource() {
  k patch widget good -n "$NS" --subresource=status --type=merge -p '{"status":{"phase":"Ready"}}' || return 1
  # A write to the main resource must leave status alone.
  k patch widget good -n "$NS" --type=merge -p '{"status":{"phase":"Overwritten"}}' || return 1
  local phase generation
  phase=$(k get widget good -n "$NS" -o 'jsonpath={.status.phase}')
  generation=$(k get widget good -n "$NS" -o 'jsonpath={.metadata.generation}')
  echo "status.phase=$phase metadata.generation=$generation"
  [ "$phase" = Ready ] && [ "$generation" = 1 ]
}

invalid_custom_resource_is_rejected_with_field_paths() {
  local out
  if out=$(k create -n "$NS" -f "$DATA/widget-invalid.yaml" 2>&1); then
    echo "an invalid Widget was accepted: $out"; return 1
  fi
  echo "$out"
  grep -q 'spec\.size' <<<"$out" && grep -q 'spec\.replicas' <<<"$out"
}

server_side_apply_of_deployment_and_service() {
  local _ managers protocol out
  for _ in 1 2; do   # twice: a re-apply of the same intent must succeed unchanged
    k apply --server-side --field-manager=flightdeck-smoke -n "$NS" -f "$DATA/app.yaml" || return 1
  done
  managers=$(k get deployment smoke-app -n "$NS" -o 'jsonpath={range .metadata.managedFields[*]}{.manager}/{.operation} {end}')
  protocol=$(k get service smoke-app -n "$NS" -o 'jsonpath={.spec.ports[0].protocol}')
  echo "deployment field managers: $managers; service protocol: $protocol"
  grep -q 'flightdeck-smoke/Apply' <<<"$managers" && [ "$protocol" = TCP ] || return 1
  # Another manager that changes a field we own gets a conflict.
  if out=$(sed 's/replicas: 1/replicas: 2/' "$DATA/app.yaml" \
           | k apply --server-side --field-manager=smoke-intruder -n "$NS" -f - 2>&1); then
    echo "a conflicting apply was accepted: $out"; return 1
  fi
  echo "conflicting apply refused: $(grep -m1 -i conflict <<<"$out")"
  grep -qi conflict <<<"$out"
}

controller_manager_makes_replicasets() {
  wait_until 60 test -n "$(k get replicasets -n "$NS" -l app=smoke-app -o name 2>/dev/null)" \
    || { echo "no ReplicaSet for Deployment smoke-app after 60 s"; return 1; }
  k get replicasets -n "$NS" -l app=smoke-app -o name
}

owner_referenced_configmap_is_garbage_collected() {
  k create configmap gc-owner -n "$NS" --from-literal=role=owner || return 1
  local uid
  uid=$(k get configmap gc-owner -n "$NS" -o 'jsonpath={.metadata.uid}')
  k apply -n "$NS" -f - <<EOF || return 1
apiVersion: v1
kind: ConfigMap
metadata:
  name: gc-dependent
  ownerReferences:
    - {apiVersion: v1, kind: ConfigMap, name: gc-owner, uid: "$uid"}
data: {role: dependent}
EOF
  k delete configmap gc-owner -n "$NS" || return 1
  if wait_until 60 dependent_is_gone; then echo "gc-dependent deleted after its owner"; return 0; fi
  echo "gc-dependent still exists 60 s after its owner was deleted"; return 1
}

dependent_is_gone() {
  local out
  out=$(k get configmap gc-dependent -n "$NS" 2>&1) && return 1
  grep -q NotFound <<<"$out"
}

service_account_token_authenticates_under_rbac() {
  k create serviceaccount smoke-reader -n "$NS" || return 1
  k create role configmap-reader -n "$NS" --verb=get,list --resource=configmaps || return 1
  k create rolebinding smoke-reader -n "$NS" --role=configmap-reader --serviceaccount="$NS:smoke-reader" || return 1
  local secret token out
  # The controller manager's token controller signs a token into a Secret
  # (Kubernetes 1.20); newer clusters only hand out bound tokens.
  wait_until 30 test -n "$(k get serviceaccount smoke-reader -n "$NS" -o 'jsonpath={.secrets[0].name}' 2>/dev/null)" || true
  secret=$(k get serviceaccount smoke-reader -n "$NS" -o 'jsonpath={.secrets[0].name}')
  if [ -n "$secret" ]; then
    token=$(k get secret "$secret" -n "$NS" -o 'jsonpath={.data.token}' | base64 -d)
  else
    token=$(k create token smoke-reader -n "$NS") || return 1
  fi
  k --token="$token" get configmaps -n "$NS" -o name >/dev/null || { echo "the token cannot list configmaps"; return 1; }
  if out=$(k --token="$token" get secrets -n "$NS" 2>&1); then echo "the token may list secrets"; return 1; fi
  echo "token lists configmaps; secrets: $out"
  grep -q Forbidden <<<"$out"
}

# Matters on a shared cluster (FLIGHTDECK_TEST_KUBECONFIG); a fresh one is discarded anyway.
cleanup() {
  k delete namespace "$NS" --wait=false >/dev/null 2>&1
  k delete crd "$CRD" --wait=false >/dev/null 2>&1
}
trap cleanup EXIT

echo "# control-plane smoke test against $(k config view --minify -o 'jsonpath={.clusters[0].cluster.server}')"
check "server version is v1.20.2" server_version_is_1_20_2
check "RBAC is enforced" rbac_is_enforced
check "CRD with status subresource and schema is established" crd_is_established
check "valid custom resource is created, with defaults" valid_custom_resource_is_created_with_defaults
check "status is a subresource" status_is_a_subresource
check "invalid custom resource is rejected with field paths" invalid_custom_resource_is_rejected_with_field_paths
check "server-side apply of a Deployment and a Service" server_side_apply_of_deployment_and_service
check "kube-controller-manager makes ReplicaSets" controller_manager_makes_replicasets
check "owner-referenced ConfigMap is garbage-collected" owner_referenced_configmap_is_garbage_collected
check "service-account token authenticates, under RBAC" service_account_token_authenticates_under_rbac
echo "# $passed passed, $failed failed"
[ "$failed" = 0 ]
