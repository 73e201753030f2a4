# shellcheck shell=bash
# The node of `cluster.sh start --node`: containerd (Debian 1.6, CRI plugin),
# runc, the Debian CNI plugins on a bridge the harness owns, kubelet,
# kube-scheduler, kube-proxy (iptables mode) and a cluster DNS (dnsmasq fed
# from Services and Endpoints by lib/dns-refresher.py). Sourced by cluster.sh;
# uses its RUN_DIR, CACHE_DIR, VER_DIR, BIN_DIR, NAME, TIMEOUT, say, die,
# spawn, alive, stop_process, free_port, wait_http.
#
# Why one node cluster per machine: the bridge, the pod range, kube-proxy's
# iptables chains (KUBE-SERVICES and friends are machine-wide names) and the
# cluster DNS address are shared by the whole machine. node_claim records the
# owner in $NODE_OWNER_FILE under a machine-wide lock; a second start fails
# with the owner's name instead of rewriting the first one's rules.

NODE_BRIDGE=flightdeck0
# Not 10.88.0.0/16: podman's and buildah's default CNI network uses it.
NODE_POD_CIDR=10.89.0.0/16
NODE_IP=10.89.0.1
NODE_NAME=flightdeck-node
PAUSE_IMAGE=localhost/flightdeck/pause:$K8S_VERSION
NODE_LOCK_FILE=${TMPDIR:-/tmp}/flightdeck-node.lock
NODE_OWNER_FILE=${TMPDIR:-/tmp}/flightdeck-node.owner
# Stop order matters: kubelet first (else it restarts what we stop), then the
# pods (through containerd), then the rest.
NODE_COMPONENTS=(kubelet kube-proxy kube-scheduler dns-refresher dnsmasq containerd)
# kubelet rewrites these at start (setupKernelTunables); stop puts them back.
NODE_SYSCTLS=(vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops
              kernel/keys/root_maxkeys kernel/keys/root_maxbytes)

# node_dirs: the cache paths of the node's binaries (call once CACHE_DIR is set).
node_dirs() {
  NODE_DIR=$CACHE_DIR/node
  NODE_BIN=$NODE_DIR/bin
  NODE_CNI_BIN=$NODE_DIR/cni
}

ctr_cmd() {
  "$NODE_BIN/ctr" --address "$RUN_DIR/containerd/containerd.sock" --namespace k8s.io "$@"
}

# ensure_node_bins: containerd, runc, the CNI plugins and dnsmasq from Debian
# packages, unpacked into the cache with dpkg-deb (apt-get install would run
# containerd's maintainer scripts and could start a system containerd), and
# the pause image.
ensure_node_bins() {
  local tmp b missing
  if [ ! -x "$NODE_BIN/dnsmasq" ] || [ ! -x "$NODE_BIN/containerd" ] || [ ! -x "$NODE_BIN/runc" ] \
     || [ ! -x "$NODE_CNI_BIN/bridge" ]; then
    say "installing containerd, runc, CNI plugins and dnsmasq from Debian into $NODE_DIR"
    tmp=$(mktemp -d)
    for b in containerd runc containernetworking-plugins dnsmasq-base; do deb_extract "$b" "$tmp"; done
    mkdir -p "$NODE_BIN" "$NODE_CNI_BIN"
    for b in containerd ctr containerd-shim-runc-v2; do install -m 0755 "$tmp/usr/bin/$b" "$NODE_BIN/"; done
    install -m 0755 "$tmp/usr/sbin/runc" "$NODE_BIN/runc"
    for b in bridge host-local loopback; do install -m 0755 "$tmp/usr/lib/cni/$b" "$NODE_CNI_BIN/"; done
    install -m 0755 "$tmp/usr/sbin/dnsmasq" "$NODE_BIN/dnsmasq.tmp"
    mv "$NODE_BIN/dnsmasq.tmp" "$NODE_BIN/dnsmasq"
    rm -rf "$tmp"
  fi
  # dpkg-deb -x skips dependencies: name the libraries still missing, if any.
  missing=$(for b in "$NODE_BIN"/*; do ldd "$b" 2>/dev/null; done | awk '/not found/ {print $1}' | sort -u | paste -sd' ' -)
  if [ -n "$missing" ]; then
    apt_install libseccomp2 libdbus-1-3 libidn2-0 libnetfilter-conntrack3 libnettle8 libhogweed6 libgmp10 libnftables1
  fi
  command -v iptables >/dev/null 2>&1 || apt_install iptables
  command -v ip >/dev/null 2>&1 || apt_install iproute2
  command -v gcc >/dev/null 2>&1 || apt_install gcc libc6-dev
  ensure_pause_image
}

# ensure_pause_image: the sandbox image, which the CRI plugin cannot pull here:
# the tree's build/pause/linux/pause.c linked statically, as a one-layer OCI
# archive named $PAUSE_IMAGE.
ensure_pause_image() {
  local out=$NODE_DIR/pause-$K8S_VERSION.tar tmp
  [ -s "$out" ] && return 0
  tmp=$(mktemp -d)
  fetch_source "$VER_DIR/dl/$K8S_ORIG_TARBALL"
  tar -xzf "$VER_DIR/dl/$K8S_ORIG_TARBALL" -C "$tmp" --wildcards '*/build/pause/linux/pause.c'
  gcc -Os -static -Wall -Werror -DVERSION="v$K8S_VERSION-flightdeck" -o "$tmp/pause" "$tmp"/*/build/pause/linux/pause.c \
    || { rm -rf "$tmp"; die "compiling pause.c failed"; }
  strip "$tmp/pause" 2>/dev/null || true
  python3 "$HERE/lib/oci-image.py" "$PAUSE_IMAGE" "$tmp/pause" /pause "$out.tmp" || { rm -rf "$tmp"; die "making the pause image failed"; }
  mv "$out.tmp" "$out"
  rm -rf "$tmp"
}

# node_claim: take the machine's node slot, or fail naming who holds it.
# The owner file: the holder's run dir, then "PID STARTTIME" of the
# `cluster.sh start` that claimed it (alive while its node is still starting,
# before any node process runs).
node_claim() {
  local lock_fd owner=
  exec {lock_fd}>"$NODE_LOCK_FILE"
  flock "$lock_fd"
  owner=$(node_owner)
  if [ -n "$owner" ] && [ "$owner" != "$RUN_DIR" ] && node_owner_alive "$owner"; then
    exec {lock_fd}>&-
    die "a node cluster already runs on this machine (run dir $owner); only one can (the bridge $NODE_BRIDGE," \
        "$NODE_POD_CIDR and kube-proxy's iptables chains are machine-wide). Stop it first:" \
        "FLIGHTDECK_CLUSTER_RUN_DIR=$owner $HERE/cluster.sh stop"
  fi
  if [ -n "${owner:-}" ] && [ "$owner" != "$RUN_DIR" ]; then
    say "a node cluster that is gone left state behind ($owner); cleaning the machine-wide part"
    node_clean_machine
  fi
  printf '%s\n%s %s\n' "$RUN_DIR" "$$" "$(proc_start_time "$$")" >"$NODE_OWNER_FILE"
  exec {lock_fd}>&-
}

node_owner() { head -n1 "$NODE_OWNER_FILE" 2>/dev/null || true; }

# node_owner_alive DIR: some node process recorded in DIR still runs.
node_owner_alive() {
  local saved=$RUN_DIR c rc=1 pid start
  [ -e "$1/.flightdeck-cluster" ] || return 1
  if read -r pid start < <(sed -n 2p "$NODE_OWNER_FILE" 2>/dev/null) && [ -n "${start:-}" ] \
     && [ "$(proc_start_time "$pid")" = "$start" ]; then
    return 0
  fi
  RUN_DIR=$1
  for c in containerd kubelet kube-proxy dnsmasq; do if alive "$c"; then rc=0; break; fi; done
  RUN_DIR=$saved
  return $rc
}

node_release() {
  local lock_fd
  exec {lock_fd}>"$NODE_LOCK_FILE"
  flock "$lock_fd"
  if [ "$(node_owner)" = "$RUN_DIR" ]; then rm -f "$NODE_OWNER_FILE"; fi
  exec {lock_fd}>&-
}

# node_prepare_host: br_netfilter (so bridged pod-to-Service traffic passes
# kube-proxy's DNAT), the bridge with the node IP (the API server, kubelet and
# DNS bind to it before any pod exists), and the cgroup root of this node.
node_prepare_host() {
  local s c
  mkdir -p "$RUN_DIR/host"
  for s in "${NODE_SYSCTLS[@]}"; do
    cat "/proc/sys/$s" >"$RUN_DIR/host/$(echo "$s" | tr / .)" 2>/dev/null || true
  done
  if [ ! -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then modprobe br_netfilter 2>/dev/null || true; fi
  if [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
    if [ "$(cat /proc/sys/net/bridge/bridge-nf-call-iptables)" != 1 ]; then
      echo 0 >"$RUN_DIR/host/bridge-nf-call-iptables"
      echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables
    fi
    KUBE_PROXY_MASQ_ALL=false
  else
    # Without br_netfilter, pod -> ClusterIP -> pod on the same bridge is
    # bridged past iptables; masquerading all Service traffic routes it back
    # through the host instead.
    say "br_netfilter unavailable; kube-proxy masquerades all Service traffic"
    KUBE_PROXY_MASQ_ALL=true
  fi
  if ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then ip link delete "$NODE_BRIDGE"; fi
  ip link add "$NODE_BRIDGE" type bridge
  ip addr add "$NODE_IP/${NODE_POD_CIDR#*/}" dev "$NODE_BRIDGE"
  ip link set "$NODE_BRIDGE" up
  # Pod -> ClusterIP -> pod goes to the gateway, is DNATed there and routed
  # back out of the same bridge: forwarding for packets that come in on this
  # bridge only (not the machine-wide ip_forward), and no ICMP redirects
  # (they would tell pods to bypass the gateway for Service addresses).
  echo 1 >"/proc/sys/net/ipv4/conf/$NODE_BRIDGE/forwarding"
  echo 0 >"/proc/sys/net/ipv4/conf/$NODE_BRIDGE/send_redirects"
  echo "$NODE_BRIDGE" >"$RUN_DIR/host/bridge"
  for c in /sys/fs/cgroup/*/; do
    [ -d "$c" ] && [ ! -L "${c%/}" ] || continue
    mkdir -p "$c$(node_cgroup_root)" 2>/dev/null || true
  done
}

node_cgroup_root() { echo "flightdeck-${NAME:?}"; }

# write_node_config PORTS...: containerd, CNI, kubelet and kube-proxy files.
write_node_config() {
  local kubelet_port=$1 kubelet_healthz=$2 proxy_healthz=$3 proxy_metrics=$4 snapshotter=$5
  local d=$RUN_DIR
  mkdir -p "$d/containerd" "$d/cni/net.d" "$d/cni/ipam" "$d/kubelet" "$d/dns/hosts"
  cat >"$d/containerd/config.toml" <<EOF
# Everything under the run dir: root, state, sockets, runc's state, netns
# mounts; nothing in /var/lib/containerd, /run/containerd or /opt.
version = 2
root = "$d/containerd/root"
state = "$d/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$d/containerd/containerd.sock"
[ttrpc]
  address = "$d/containerd/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # The machine lacks CAP_SYS_RESOURCE: a negative oom_score_adj (what a
  # sandbox asks for) cannot be set and runc fails every sandbox with
  # "can't get final child's PID from pipe: EOF" unless it is clamped.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "$snapshotter"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$NODE_BIN/runc"
        Root = "$d/containerd/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$NODE_CNI_BIN"
    conf_dir = "$d/cni/net.d"
    max_conf_num = 1
EOF
  # No ipMasq and no portmap: pods talk only to the node and to each other,
  # and both plugins leave iptables chains behind when a pod's CNI DEL never
  # runs (as on a hard stop).
  cat >"$d/cni/net.d/10-flightdeck.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "flightdeck",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$NODE_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$d/cni/ipam",
        "ranges": [[{"subnet": "$NODE_POD_CIDR", "gateway": "$NODE_IP", "rangeStart": "${NODE_IP%.*}.10"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "loopback"}
  ]
}
EOF
  cat >"$d/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $kubelet_healthz
tlsCertFile: $d/pki/kubelet.crt
tlsPrivateKeyFile: $d/pki/kubelet.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $d/pki/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
# Pods' cgroups under one root per instance, so stop removes exactly these.
cgroupRoot: /$(node_cgroup_root)
failSwapOn: false
clusterDNS: [$NODE_IP]
clusterDomain: cluster.local
# No host resolv.conf: pods see only the cluster DNS and its search path.
resolvConf: ""
maxPods: 110
# Tests share a busy disk: never evict, never garbage-collect the imported
# images (nothing can pull them back).
evictionHard: {memory.available: "1Mi", nodefs.available: "0%", nodefs.inodesFree: "0%", imagefs.available: "0%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# KUBE-MARK-DROP, KUBE-FIREWALL and the canary chains would outlive the
# cluster; kube-proxy makes what it needs and --cleanup removes it.
makeIPTablesUtilChains: false
serializeImagePulls: false
registerNode: true
nodeStatusUpdateFrequency: 4s
syncFrequency: 10s
fileCheckFrequency: 10s
volumeStatsAggPeriod: 1m
EOF
  cat >"$d/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $d/kubeconfig}
mode: iptables
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
clusterCIDR: $NODE_POD_CIDR
healthzBindAddress: 127.0.0.1:$proxy_healthz
metricsBindAddress: 127.0.0.1:$proxy_metrics
# NodePorts only on the bridge address: loopback NodePorts would make
# kube-proxy set net.ipv4.conf.all.route_localnet=1 machine-wide.
nodePortAddresses: [$NODE_IP/32]
iptables: {masqueradeAll: ${KUBE_PROXY_MASQ_ALL:-false}, syncPeriod: 30s, minSyncPeriod: 0s}
# 0: leave the machine's conntrack sysctls alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
}

# node_snapshotter: overlayfs where the run dir's filesystem takes it
# (not on overlayfs or tmpfs-less kernels), else native (copies; slower).
node_snapshotter() {
  local t=$RUN_DIR/overlay-check ok=native
  mkdir -p "$t/l" "$t/u" "$t/w" "$t/m"
  if mount -t overlay overlay -o "lowerdir=$t/l,upperdir=$t/u,workdir=$t/w" "$t/m" 2>/dev/null; then
    umount "$t/m"; ok=overlayfs
  fi
  rm -rf "$t"
  echo "$ok"
}

# start_node T0 API_PORT: containerd, DNS, kubelet, scheduler, kube-proxy;
# returns once the node is Ready and the DNS answers.
start_node() {
  local t0=$1 api_port=$2 c sched_port kubelet_port kubelet_healthz proxy_healthz proxy_metrics snapshotter
  local token ca=$RUN_DIR/pki/ca.crt kc=$RUN_DIR/kubeconfig
  token=$(cat "$RUN_DIR/pki/token")
  sched_port=$(free_port); kubelet_port=$(free_port); kubelet_healthz=$(free_port)
  proxy_healthz=$(free_port); proxy_metrics=$(free_port)
  # Pods find the API server through default/kubernetes (10.0.0.1:443);
  # with --endpoint-reconciler-type=none nothing else writes its Endpoints.
  # The controller manager mirrors them into the EndpointSlice kube-proxy reads.
  curl -sf --max-time 10 --cacert "$ca" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -X POST "https://$NODE_IP:$api_port/api/v1/namespaces/default/endpoints" -d '{"apiVersion": "v1",
      "kind": "Endpoints", "metadata": {"name": "kubernetes", "namespace": "default"},
      "subsets": [{"addresses": [{"ip": "'"$NODE_IP"'"}],
                   "ports": [{"name": "https", "port": '"$api_port"', "protocol": "TCP"}]}]}' >/dev/null \
    || die "creating the Endpoints default/kubernetes failed"
  snapshotter=$(node_snapshotter)
  echo "$snapshotter" >"$RUN_DIR/snapshotter"
  write_node_config "$kubelet_port" "$kubelet_healthz" "$proxy_healthz" "$proxy_metrics" "$snapshotter"

  PATH="$NODE_BIN:$PATH" spawn containerd "$NODE_BIN/containerd" --config "$RUN_DIR/containerd/config.toml"
  local deadline=$(( $(date +%s) + TIMEOUT ))
  until ctr_cmd version >/dev/null 2>&1; do
    alive containerd || { tail -n 20 "$RUN_DIR/containerd.log" >&2; die "containerd exited (log: $RUN_DIR/containerd.log)"; }
    [ "$(date +%s)" -lt "$deadline" ] || die "containerd not ready after ${TIMEOUT}s"
    sleep 0.1
  done
  ctr_cmd images import --snapshotter "$snapshotter" "$NODE_DIR/pause-$K8S_VERSION.tar" >"$RUN_DIR/pause-import.log" 2>&1 \
    || { cat "$RUN_DIR/pause-import.log" >&2; die "importing the pause image failed"; }
  say "containerd ready ($snapshotter) after $(( $(now_ms) - t0 )) ms"

  # No upstream (--no-resolv): the harness's traffic stays on the machine.
  # --address=/#/ answers every name without a record NXDOMAIN rather than
  # REFUSED, so resolvers walk the search path and fail fast and cleanly.
  spawn dnsmasq "$NODE_BIN/dnsmasq" --keep-in-foreground --log-facility=- --pid-file= --user=root \
    --listen-address="$NODE_IP" --bind-interfaces --port=53 --no-resolv --no-hosts --no-poll \
    --local=/cluster.local/ --address=/#/ --domain-needed --hostsdir="$RUN_DIR/dns/hosts" --local-ttl=0 \
    --cache-size=1000
  # The system python3: spawn recognises a process by its executable, and a
  # pyenv shim on PATH is a script that execs another one.
  spawn dns-refresher "$(node_python)" "$HERE/lib/dns-refresher.py" --server "https://$NODE_IP:$api_port" \
    --token-file "$RUN_DIR/pki/token" --ca "$ca" --hosts-dir "$RUN_DIR/dns/hosts" --interval 0.5

  spawn kube-scheduler "$BIN_DIR/kube-scheduler" --kubeconfig="$kc" --authentication-kubeconfig="$kc" \
    --authorization-kubeconfig="$kc" --bind-address=127.0.0.1 --secure-port="$sched_port" --port=0 \
    --leader-elect=false --profiling=false

  spawn kubelet "$BIN_DIR/kubelet" --config="$RUN_DIR/kubelet/config.yaml" --kubeconfig="$kc" \
    --root-dir="$RUN_DIR/kubelet/root" --cert-dir="$RUN_DIR/kubelet/pki" \
    --container-runtime=remote --container-runtime-endpoint="unix://$RUN_DIR/containerd/containerd.sock" \
    --image-service-endpoint="unix://$RUN_DIR/containerd/containerd.sock" \
    --pod-infra-container-image="$PAUSE_IMAGE" --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" \
    --runtime-request-timeout=5m --v=1

  PATH="$NODE_BIN:$PATH" spawn kube-proxy "$BIN_DIR/kube-proxy" --config="$RUN_DIR/kube-proxy.yaml"

  wait_http kube-scheduler "https://127.0.0.1:$sched_port/healthz" '^ok$' -k
  wait_http kubelet "http://127.0.0.1:$kubelet_healthz/healthz" '^ok$'
  wait_http kube-proxy "http://127.0.0.1:$proxy_healthz/healthz" 'lastUpdated'
  deadline=$(( $(date +%s) + TIMEOUT ))
  until curl -s --max-time 2 --cacert "$ca" -H "Authorization: Bearer $token" \
          "https://$NODE_IP:$api_port/api/v1/nodes/$NODE_NAME" 2>/dev/null | node_is_ready; do
    for c in kubelet containerd kube-proxy; do
      alive "$c" || { tail -n 20 "$RUN_DIR/$c.log" >&2; die "$c exited during start-up (log: $RUN_DIR/$c.log)"; }
    done
    [ "$(date +%s)" -lt "$deadline" ] || { tail -n 20 "$RUN_DIR/kubelet.log" >&2; die "node not Ready after ${TIMEOUT}s"; }
    sleep 0.2
  done
  say "node $NODE_NAME Ready after $(( $(now_ms) - t0 )) ms"
  # The DNS answers once the refresher has written the kubernetes Service.
  deadline=$(( $(date +%s) + TIMEOUT ))
  until [ "$(python3 "$HERE/lib/dns-refresher.py" --query kubernetes.default.svc.cluster.local --dns "$NODE_IP" 2>/dev/null)" = 10.0.0.1 ]; do
    alive dnsmasq || { tail -n 20 "$RUN_DIR/dnsmasq.log" >&2; die "dnsmasq exited (log: $RUN_DIR/dnsmasq.log)"; }
    alive dns-refresher || { tail -n 20 "$RUN_DIR/dns-refresher.log" >&2; die "dns-refresher exited (log: $RUN_DIR/dns-refresher.log)"; }
    [ "$(date +%s)" -lt "$deadline" ] || die "cluster DNS on $NODE_IP:53 not answering after ${TIMEOUT}s"
    sleep 0.1
  done
  say "cluster DNS answering on $NODE_IP:53 after $(( $(now_ms) - t0 )) ms"
}

node_python() {
  if [ -x /usr/bin/python3 ]; then echo /usr/bin/python3; else command -v python3; fi
}

# node_is_ready: stdin, a Node as JSON, has condition Ready=True.
node_is_ready() {
  python3 -c 'import json, sys
try:
    node = json.load(sys.stdin)
except ValueError:
    sys.exit(1)
conds = node.get("status", {}).get("conditions") or []
sys.exit(0 if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds) else 1)'
}

# stop_node_processes: everything start_node started, in an order where
# nothing restarts what was just stopped.
stop_node_processes() {
  stop_process kubelet
  if alive containerd; then node_remove_containers; fi
  local c
  for c in "${NODE_COMPONENTS[@]}"; do stop_process "$c"; done
  node_kill_shims
}

# stop_node_host: the state outside the processes (mounts, bridge, iptables,
# cgroups, sysctls, /var/log/pods). After the API server has stopped: it
# listens on the bridge address, and with the bridge gone its shutdown hangs
# until killed.
stop_node_host() {
  node_unmount_all
  # The machine-wide part only by the node slot's holder: a start that failed
  # because another node cluster runs must not take that one's bridge down.
  if node_owns_slot; then
    node_clean_machine
    node_restore_host
    node_release
  fi
}

# node_owns_slot: this instance holds the machine's node slot (or nobody does).
node_owns_slot() {
  local owner
  owner=$(node_owner)
  [ -z "$owner" ] || [ "$owner" = "$RUN_DIR" ]
}

# node_remove_containers: kill and delete every task and container of this
# containerd (kubelet is stopped, so nothing recreates them). Their network
# namespaces die with their last process; the mounts are handled below.
node_remove_containers() {
  local id
  for id in $(ctr_cmd tasks list -q 2>/dev/null); do
    ctr_cmd tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
  done
  for id in $(ctr_cmd tasks list -q 2>/dev/null); do
    timeout 10 ctr_cmd tasks delete -f "$id" >/dev/null 2>&1 || true
  done
  for id in $(ctr_cmd containers list -q 2>/dev/null); do
    ctr_cmd containers delete "$id" >/dev/null 2>&1 || true
  done
}

# node_kill_shims: a containerd-shim of this instance that outlived the
# above. Found by the containerd socket in its command line, which names this
# run dir, so no other instance's shim is touched.
node_kill_shims() {
  local p cmd
  for p in /proc/[0-9]*; do
    cmd=$( { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null) || continue
    case $cmd in
      *containerd-shim*"$RUN_DIR/containerd/containerd.sock"*) kill -KILL "${p#/proc/}" 2>/dev/null || true ;;
    esac
  done
}

# node_unmount_all: every mount under the run dir (kubelet's secret and
# projected volumes, containerd's rootfs and shm mounts, netns bind mounts),
# deepest first, so the rm -rf of the run dir never walks into a live mount.
node_unmount_all() {
  local m
  for _ in 1 2 3; do
    m=$(awk -v d="$RUN_DIR/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r)
    [ -n "$m" ] || return 0
    while read -r mp; do
      mp=$(printf '%b' "$mp")   # mountinfo escapes spaces as \040
      umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true
    done <<<"$m"
  done
}

# node_clean_machine: the machine-wide leftovers of a node cluster, safe to
# run when some are already gone.
node_clean_machine() {
  if [ -x "$BIN_DIR/kube-proxy" ]; then
    "$BIN_DIR/kube-proxy" --cleanup >"$RUN_DIR/kube-proxy-cleanup.log" 2>&1 || true
  fi
  # What --cleanup of 1.20 leaves: its canary chains, and KUBE-MARK-DROP/MASQ
  # (kubelet's by default; here, with makeIPTablesUtilChains off, kube-proxy
  # made them). Nothing refers to them any more once --cleanup has run.
  local t chain
  for t in filter nat mangle; do
    for chain in KUBE-PROXY-CANARY KUBE-KUBELET-CANARY KUBE-MARK-DROP KUBE-MARK-MASQ; do
      if iptables -w -t "$t" -S "$chain" >/dev/null 2>&1; then
        iptables -w -t "$t" -F "$chain" 2>/dev/null && iptables -w -t "$t" -X "$chain" 2>/dev/null || true
      fi
    done
  done
  if ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then ip link delete "$NODE_BRIDGE" 2>/dev/null || true; fi
  local c root
  root=$(node_cgroup_root)
  for c in /sys/fs/cgroup/*/"$root"; do
    [ -d "$c" ] || continue
    # Deepest first; a cgroup dir is removed with rmdir, never rm -r.
    find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
  # kubelet 1.20 writes container logs under the fixed /var/log/pods and
  # links them from /var/log/containers; remove this node's pods' ones.
  local pod
  for pod in "$RUN_DIR"/kubelet/root/pods/*/; do
    [ -d "$pod" ] || continue
    pod=${pod%/}
    rm -rf /var/log/pods/*_"${pod##*/}"
  done
  find /var/log/containers -maxdepth 1 -xtype l -delete 2>/dev/null || true
  # containerd 1.6 puts shim sockets under the fixed /run/containerd/s (and
  # ctr its FIFOs under /run/containerd/fifo) whatever its state dir is.
  # rmdir removes them only once empty, i.e. never another containerd's.
  rmdir /run/containerd/s /run/containerd/fifo /run/containerd/runc/k8s.io /run/containerd/runc \
    /run/containerd 2>/dev/null || true
}

node_restore_host() {
  local s f
  for s in "${NODE_SYSCTLS[@]}"; do
    f=$RUN_DIR/host/$(echo "$s" | tr / .)
    if [ -s "$f" ] && [ "$(cat "/proc/sys/$s")" != "$(cat "$f")" ]; then cat "$f" >"/proc/sys/$s" 2>/dev/null || true; fi
  done
  if [ -s "$RUN_DIR/host/bridge-nf-call-iptables" ]; then
    cat "$RUN_DIR/host/bridge-nf-call-iptables" >/proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || true
  fi
}

# node_import FILE...: load OCI or docker archives into this node's
# containerd (k8s.io namespace, unpacked for the CRI's snapshotter) and print
# each image reference loaded, normalised as the CRI looks them up
# ("foo:1" -> "docker.io/library/foo:1"), one per line.
node_import() {
  local f snapshotter out name norm
  snapshotter=$(cat "$RUN_DIR/snapshotter")
  for f in "$@"; do
    [ -f "$f" ] || die "$f: no such file"
    out=$(ctr_cmd images import --snapshotter "$snapshotter" "$f" 2>&1) || { echo "$out" >&2; die "importing $f failed"; }
    while read -r name; do
      [ -n "$name" ] || continue
      norm=$(normalize_image_ref "$name")
      if [ "$norm" != "$name" ]; then
        ctr_cmd images tag --force "$name" "$norm" >/dev/null || die "tagging $name as $norm failed"
      fi
      echo "$norm"
    done < <(echo "$out" | sed -n 's/^unpacking \(.*\) (sha256:[0-9a-f]*)\.\.\.done$/\1/p')
  done
}

# normalize_image_ref REF: the docker reference normalisation the CRI uses.
normalize_image_ref() {
  local ref=$1 first=${1%%/*}
  if [ "$first" = "$ref" ]; then ref=docker.io/library/$ref
  elif [[ ! $first =~ [.:] ]] && [ "$first" != localhost ]; then ref=docker.io/$ref; fi
  case ${ref##*/} in *:*|*@*) ;; *) ref=$ref:latest ;; esac
  echo "$ref"
}

# make_node_pki: the kubelet's serving certificate (for the node IP, checked
# by the API server against the cluster CA) and the API server's client
# certificate for kubelet (kubectl logs/exec), in system:masters so the
# kubelet's webhook authorization admits it.
make_node_pki() {
  (
    set -e
    umask 077
    cd "$RUN_DIR/pki"
    openssl ecparam -name prime256v1 -genkey -noout -out kubelet.key
    openssl req -new -key kubelet.key -subj "/CN=system:node:$NODE_NAME/O=system:nodes" -out kubelet.csr
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth" "subjectAltName=IP:$NODE_IP,DNS:$NODE_NAME" >kubelet.ext
    openssl x509 -req -in kubelet.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 30 \
      -extfile kubelet.ext -out kubelet.crt
    openssl ecparam -name prime256v1 -genkey -noout -out apiserver-kubelet-client.key
    openssl req -new -key apiserver-kubelet-client.key -subj "/CN=kube-apiserver-kubelet-client/O=system:masters" \
      -out apiserver-kubelet-client.csr
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=clientAuth" >client.ext
    openssl x509 -req -in apiserver-kubelet-client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 30 \
      -extfile client.ext -out apiserver-kubelet-client.crt
  ) >>"$RUN_DIR/pki.log" 2>&1 || { cat "$RUN_DIR/pki.log" >&2; die "making node certificates failed"; }
}
