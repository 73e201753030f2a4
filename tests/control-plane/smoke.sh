#!/usr/bin/env bash
# smoke.sh - self-test of the local control plane, run the way the operator and
# packaging tests run: through with-cluster.sh, against a fresh cluster.
# It checks what those tests rely on: the server version, RBAC, a CRD with
# status subresource and OpenAPI validation (enum, minimum, defaults),
# server-side apply of a Deployment and a Service, the controller manager's
# Deployment -> ReplicaSet and garbage collection of owner-referenced objects,
# and that a service account's token authenticates and is held to its Role.
# Prints one "ok"/"not ok" line per check; exits non-zero if any check fails.
# Before any of that, every shell script of the project (tests/, .ci/run) must
# pass shellcheck; after it, nothing of the cluster may be left running. The
# checks themselves are smoke-in-cluster.sh, run by with-cluster.sh. Last,
# smoke-node.sh checks the node mode (with-cluster.sh --node).
#
# Usage: tests/control-plane/smoke.sh
#   FLIGHTDECK_TEST_KUBECONFIG=PATH  run against that cluster instead (the
#                                    version check is then skipped)
#   FLIGHTDECK_SMOKE_VERBOSE=1       also print what passing checks saw
#   FLIGHTDECK_SMOKE_TIMEOUT         seconds for the checks once the cluster is
#                                    up (default 600)
#   FLIGHTDECK_SMOKE_NODE=0          skip the node checks (smoke-node.sh; they
#                                    need root and the machine's one node slot)
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

# Every shell script of the project first: a shell slip in a harness or a
# suite's runner breaks CI in ways that are slow to trace.
lint_bin=$("$ROOT/tests/lib/venv.sh" "$HERE/requirements-lint.txt") || exit 1
mapfile -t scripts < <(cd "$ROOT" && { find tests -type f -name '*.sh'; echo tests/lib/helm/helm; echo .ci/run; } | sort)
(cd "$ROOT" && "$lint_bin/shellcheck" -x -P SCRIPTDIR "${scripts[@]}") || {
  echo "not ok - the project's shell scripts pass shellcheck"; exit 1; }
echo "ok - the project's ${#scripts[@]} shell scripts pass shellcheck"
# The one-time build may take 20 minutes; bound only what comes after it.
if [ -z "${FLIGHTDECK_TEST_KUBECONFIG:-}" ]; then "$HERE/cluster.sh" build || exit 1; fi
state=$(mktemp)
FLIGHTDECK_SMOKE_STATE=$state \
  "$HERE/with-cluster.sh" --timeout "${FLIGHTDECK_SMOKE_TIMEOUT:-600}" "$HERE/smoke-in-cluster.sh"
rc=$?
# with-cluster.sh must leave nothing behind: no run dir, no process.
if read -r run_dir <"$state" 2>/dev/null; then
  # shellcheck source=lib/process.sh
  . "$HERE/lib/process.sh"
  leftovers=$([ ! -d "$run_dir" ] || echo "$run_dir")
  while read -r name pid start; do
    gone "$pid" "$start" || leftovers="$leftovers $name($pid)"
  done < <(tail -n +2 "$state")
  if [ -z "$leftovers" ]; then
    echo "ok - with-cluster.sh tore the cluster down"
  else
    echo "not ok - with-cluster.sh tore the cluster down"; echo "    left behind: $leftovers"; rc=1
  fi
fi
rm -f "$state"
# Then the node mode: pods, Services, DNS, in-cluster API (smoke-node.sh).
if [ -z "${FLIGHTDECK_TEST_KUBECONFIG:-}" ] && [ "${FLIGHTDECK_SMOKE_NODE:-1}" != 0 ]; then
  "$HERE/smoke-node.sh" || rc=1
fi
exit "$rc"
