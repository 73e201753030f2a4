#!/usr/bin/env bash
# The cluster half of tests/node/run.sh, run by
# `tests/control-plane/with-cluster.sh --node` (KUBECONFIG set, kubectl on
# PATH): loads the images into the node, installs the operator with
# `make deploy` exactly as the README says, then runs the scenarios.
#
#   tests/node/in-cluster.sh [pytest args...]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
: "${KUBECONFIG:?KUBECONFIG must be set by the cluster harness}"

# ref_of PATTERN: the one loaded image reference that matches.
ref_of() {
  local ref
  ref=$(grep -E -- "$1" <<<"$refs" | head -n1)
  [ -n "$ref" ] || { echo "node: no image matching $1 among: $refs" >&2; exit 1; }
  echo "$ref"
}

# On failure, what a person would look at first (the EXIT trap calls it).
# shellcheck disable=SC2329
diagnose() {
  local rc=$?
  [ "$rc" = 0 ] && return 0
  echo "== node: failed ($rc); cluster state" >&2
  kubectl get nodes -o wide >&2 || true
  kubectl get pods -A -o wide >&2 || true
  kubectl get events -A --sort-by=.lastTimestamp 2>/dev/null | tail -n 40 >&2 || true
  kubectl -n flightdeck-system logs deploy/flightdeck-operator --tail=60 >&2 || true
  return "$rc"
}
trap diagnose EXIT

echo "== loading the images into the node"
refs=$(make -s node-images)
printf '%s\n' "$refs"
FLIGHTDECK_IMAGE_OPERATOR=$(ref_of '/flightdeck-operator:')
FLIGHTDECK_IMAGE_TEST_ENGINE=$(ref_of 'test-engine:')
FLIGHTDECK_IMAGE_LLAMACPP=$(ref_of 'llama')
# Where the llama.cpp engine image keeps SmolLM2 (tests/images/build.sh).
FLIGHTDECK_LLAMA_MODEL=${FLIGHTDECK_LLAMA_MODEL:-/models/SmolLM2-135M-Instruct.Q4_1.gguf}
export FLIGHTDECK_IMAGE_OPERATOR FLIGHTDECK_IMAGE_TEST_ENGINE FLIGHTDECK_IMAGE_LLAMACPP FLIGHTDECK_LLAMA_MODEL

echo "== make deploy (the operator, its RBAC and the CRD, pinned to the loaded images)"
registry=${FLIGHTDECK_IMAGE_OPERATOR%/flightdeck-operator:*}
version=${FLIGHTDECK_IMAGE_OPERATOR##*:}
make -s deploy IMAGE_REGISTRY="$registry" VERSION="$version" >/dev/null
kubectl -n flightdeck-system rollout status deployment/flightdeck-operator --timeout=180s

bin=$("$ROOT/tests/lib/venv.sh" "$ROOT/tests/node/requirements.txt")
cd tests/node
status=0
"$bin/python" -m pytest -ra "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "node: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit "$status"
