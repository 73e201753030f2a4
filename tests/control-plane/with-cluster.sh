#!/usr/bin/env bash
# with-cluster.sh [--node] [--timeout SECONDS] CMD [ARGS...] - run CMD against
# a fresh, private Kubernetes control plane (cluster.sh) and always tear it
# down afterwards. Every suite runs its cluster part this way:
#
#   tests/control-plane/with-cluster.sh --timeout 600 tests/SUITE/in-cluster.sh ARGS...
#
# --timeout bounds CMD alone, not the cluster's start (whose first run on a
# machine builds Kubernetes): after SECONDS, CMD's process group gets SIGTERM
# (SIGKILL 10 s later) and the exit status is 124.
#
# --node starts the cluster with a node (`cluster.sh start --node`: kubelet,
# containerd, kube-proxy, cluster DNS), so pods run. One node cluster per
# machine; images go in with `cluster.sh import` (FLIGHTDECK_CLUSTER_NAME is
# set for CMD, so CMD can call it directly).
#
# CMD runs with:
#   KUBECONFIG                  the new cluster's admin kubeconfig
#   PATH                        prefixed with the venv bin dir that holds kubectl
#   FLIGHTDECK_CLUSTER_NAME     the cluster's unique name (for cluster.sh status)
#   FLIGHTDECK_CLUSTER_RUN_DIR  its run dir (component logs: *.log there)
# The exit status is CMD's. When CMD ends, fails, or this script gets Ctrl-C /
# SIGTERM / SIGHUP, CMD's process group is sent SIGTERM (SIGKILL after 10 s; this
# also ends processes CMD left behind) and the cluster is stopped. If this
# script is killed outright, a watchdog ends CMD's process group and stops the
# cluster within a second.
#
# Environment:
#   FLIGHTDECK_TEST_KUBECONFIG  run CMD against this existing cluster instead
#                               (kind, k3d, a cloud cluster); nothing is started
#   FLIGHTDECK_CLUSTER_LOG_DIR  copy the components' logs here before stopping
#   FLIGHTDECK_CACHE, FLIGHTDECK_CLUSTER_TIMEOUT: as for cluster.sh
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/process.sh
. "$HERE/lib/process.sh"
# CI may run us with stdin closed; CMD gets our stdin below, so make it valid.
if [ ! -e "/proc/$$/fd/0" ]; then exec </dev/null; fi
usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
limit=
start_args=()
while [ $# -gt 0 ]; do
  case $1 in
    --timeout) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || usage; limit=$2; shift 2 ;;
    --node) start_args=(--node); shift ;;
    --) shift; break ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || usage

kubectl_dir=$("$HERE/../lib/venv.sh" "$HERE/requirements.txt") || { echo "with-cluster: cannot install kubectl" >&2; exit 1; }
export PATH=$kubectl_dir:$PATH

if [ -n "${FLIGHTDECK_TEST_KUBECONFIG:-}" ]; then
  echo "with-cluster: using the existing cluster of $FLIGHTDECK_TEST_KUBECONFIG" >&2
  export KUBECONFIG=$FLIGHTDECK_TEST_KUBECONFIG
  if [ -n "$limit" ]; then exec timeout --kill-after=10 "$limit" "$@"; fi
  exec "$@"
fi

# Unique per call, so parallel callers never share (or stop) each other's cluster.
FLIGHTDECK_CLUSTER_NAME="wc-$$-$(date +%s)-$RANDOM"
export FLIGHTDECK_CLUSTER_NAME
unset FLIGHTDECK_CLUSTER_RUN_DIR
child=
CMD_NAME=$1

cleanup() {
  local rc=$?
  if [ -n "$limit" ] && [ -n "$child" ] && [ "$rc" = 124 ]; then
    echo "with-cluster: ${CMD_NAME} did not finish within ${limit}s; ended it" >&2
  fi
  end_cmd
  if "$HERE/cluster.sh" stop; then
    # The name was ours alone, so nobody else can be waiting on its lock file.
    rm -f "${TMPDIR:-/tmp}/flightdeck-cluster-$(id -u)-$FLIGHTDECK_CLUSTER_NAME.lock"
  else
    echo "with-cluster: stopping cluster $FLIGHTDECK_CLUSTER_NAME failed" >&2
  fi
  exit "$rc"
}

# end_cmd: SIGTERM to CMD's whole process group (test binaries, servers it
# started), SIGKILL to whatever is left after 10 s.
end_cmd() {
  local _
  [ -n "$child" ] && group_running "$child" || return 0
  kill -TERM -- "-$child" 2>/dev/null
  for _ in $(seq 1 100); do group_running "$child" || return 0; sleep 0.1; done
  kill -KILL -- "-$child" 2>/dev/null
}


# on_signal SIG CODE: end CMD, then exit with the shell's usual 128+N status,
# which runs cleanup.
on_signal() {
  echo "with-cluster: got SIG$1; ending ${CMD_NAME}" >&2
  end_cmd
  exit "$2"
}

trap cleanup EXIT
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM
trap 'on_signal HUP 129' HUP

kubeconfig=$(FLIGHTDECK_CLUSTER_OWNER_PID=$$ "$HERE/cluster.sh" start "${start_args[@]}") || exit 1
export KUBECONFIG=$kubeconfig
FLIGHTDECK_CLUSTER_RUN_DIR=$(dirname "$kubeconfig")
export FLIGHTDECK_CLUSTER_RUN_DIR

# CMD runs in the background so that a signal to this script is handled at
# once (bash defers traps until a foreground command ends), in a session of its
# own so that it and everything it starts can be ended as one process group.
# A background job of a non-interactive shell ignores SIGINT and reads
# /dev/null; the subshell undoes both before it becomes CMD. With --timeout,
# timeout(1) leads that group and signals all of it when time is up.
(
  trap - INT QUIT
  if [ -n "$limit" ]; then exec setsid timeout --kill-after=10 "$limit" "$@"; fi
  exec setsid "$@"
) <&0 &
child=$!
# For the watchdog, should this script be SIGKILLed (see lib/watchdog.sh).
echo "$child $(proc_start_time "$child")" >"$FLIGHTDECK_CLUSTER_RUN_DIR/owner-group"
wait "$child"
