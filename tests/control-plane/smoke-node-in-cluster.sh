#!/usr/bin/env bash
# The checks of smoke-node.sh, run by `with-cluster.sh --node` (KUBECONFIG,
# kubectl on PATH, FLIGHTDECK_CLUSTER_NAME set): the node is Ready; an image
# imported with `cluster.sh import` runs as a pod; the host reaches the pod IP
# and a ClusterIP; a pod reaches a ClusterIP and `SVC.NS` by name; a headless
# Service name resolves to every ready pod and follows a scale-up; a pod
# reaches the API server as kubernetes.default.svc with its ServiceAccount
# token; kubectl logs and exec work. One "ok"/"not ok" line per check.
# (Debian's static busybox wget segfaults with -T: `timeout 5 wget` instead.)
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${KUBECONFIG:?run through tests/control-plane/smoke-node.sh}"
: "${FLIGHTDECK_SMOKE_IMAGE_TAR:?run through tests/control-plane/smoke-node.sh}"

# For smoke-node.sh's teardown check: the run dir and each component's PID.
if [ -n "${FLIGHTDECK_SMOKE_STATE:-}" ]; then
  {
    echo "$FLIGHTDECK_CLUSTER_RUN_DIR"
    for c in etcd kube-apiserver kube-controller-manager watchdog kube-scheduler kubelet kube-proxy containerd \
             dnsmasq dns-refresher; do
      echo "$c $(cat "$FLIGHTDECK_CLUSTER_RUN_DIR/$c.pid") $(cat "$FLIGHTDECK_CLUSTER_RUN_DIR/$c.start")"
    done
  } >"$FLIGHTDECK_SMOKE_STATE"
fi

NS=node-smoke
# shellcheck source=lib/checks.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
kn() { k -n "$NS" "$@"; }

# retry SECONDS CMD...: CMD until it succeeds (output of the last try).
retry() {
  local deadline=$(( $(date +%s) + $1 )) out; shift
  while :; do
    if out=$("$@" 2>&1); then printf '%s\n' "$out"; return 0; fi
    [ "$(date +%s)" -lt "$deadline" ] || { printf '%s\n' "$out"; return 1; }
    sleep 0.5
  done
}

# What smoke-node.sh's buildah build names the image.
IMAGE=localhost/flightdeck/smoke-busybox:1
import_image() {
  local out
  out=$("$HERE/cluster.sh" import "$FLIGHTDECK_SMOKE_IMAGE_TAR") || return 1
  echo "$out"
  [ "$out" = "$IMAGE" ] && "$HERE/cluster.sh" ctr images ls -q | grep -qx "$IMAGE"
}

node_ready() {
  k get node flightdeck-node -o jsonpath='{.status.conditions[?(@.type=="Ready")].status} {.spec.taints}'
  [ "$(k get node flightdeck-node -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ] \
    && [ -z "$(k get node flightdeck-node -o jsonpath='{.spec.taints}')" ]
}

apply_workloads() {
  kubectl create namespace "$NS" >/dev/null && kn apply -f - <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: $IMAGE
        imagePullPolicy: Never
        command: [/bin/sh, -c, 'mkdir -p /www && hostname >/www/index.html && echo "serving as \$(hostname)" && exec httpd -f -v -p 8080 -h /www']
        ports: [{containerPort: 8080}]
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: web-headless}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{port: 8080, protocol: TCP}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: client
    image: $IMAGE
    imagePullPolicy: Never
    command: [/bin/sleep, "3600"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader}
rules: [{apiGroups: [""], resources: [pods], verbs: [get, list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: default-pod-reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
subjects: [{kind: ServiceAccount, name: default, namespace: $NS}]
EOF
}

T_APPLY=
pods_running() {
  retry 60 sh -c "[ -n \"\$(kubectl -n $NS get pod -l app=web -o name)\" ]" >/dev/null || { echo "no web pod"; return 1; }
  if ! kn wait --for=condition=Ready pod -l app=web --timeout=120s \
     || ! kn wait --for=condition=Ready pod/client --timeout=120s; then
    kn describe pods | tail -n 30; return 1
  fi
  echo "pods Ready $(( $(now_ms) - T_APPLY )) ms after apply"
}

web_pod() { kn get pod -l app=web -o jsonpath='{.items[0].metadata.name}'; }
web_ip() { kn get pod -l app=web -o jsonpath='{.items[0].status.podIP}'; }
cluster_ip() { kn get service web -o jsonpath='{.spec.clusterIP}'; }

host_to_pod() {
  local ip body; ip=$(web_ip); body=$(curl -s --max-time 5 "http://$ip:8080/")
  echo "$ip -> $body"; [ -n "$ip" ] && [ "$body" = "$(web_pod)" ]
}
host_to_cluster_ip() {
  local ip; ip=$(cluster_ip)
  retry 30 sh -c "curl -sf --max-time 3 http://$ip/ | grep -qx '$(web_pod)'" && echo "$ip answers"
}
pod_to_cluster_ip() {
  local ip; ip=$(cluster_ip)
  retry 30 kn exec client -- timeout 5 wget -qO- "http://$ip/" | tee /dev/stderr | grep -qx "$(web_pod)"
}
pod_to_service_name() {
  kn exec client -- cat /etc/resolv.conf
  retry 30 kn exec client -- timeout 5 wget -qO- "http://web.$NS/" | tee /dev/stderr | grep -qx "$(web_pod)"
}

# headless_ips: the addresses the client pod's resolver gets for the headless
# Service, sorted, one per line.
headless_ips() {
  kn exec client -- nslookup "web-headless.$NS.svc.cluster.local" 2>/dev/null \
    | awk '/^Name:/ {seen = 1} seen && /^Address/ {print $NF}' | sort
}
ready_ips() {
  kn get endpoints web-headless -o jsonpath='{range .subsets[*].addresses[*]}{.ip}{"\n"}{end}' | sort
}
# wait_headless WANT: until the client's resolver returns exactly WANT.
wait_headless() {
  local want=$1 got deadline=$(( $(date +%s) + 10 ))
  while got=$(headless_ips); [ "$got" != "$want" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "want: $want"; echo "got: $got"; return 1; }
    sleep 0.2
  done
}
headless_one() {
  local want; want=$(web_ip)
  [ -n "$want" ] || return 1
  wait_headless "$want" && echo "$want"
}
headless_scale() {
  local t0 want
  kn scale deployment web --replicas=3 >/dev/null
  kn rollout status deployment web --timeout=120s >/dev/null || return 1
  t0=$(now_ms)
  want=$(ready_ips)
  [ "$(echo "$want" | wc -l)" = 3 ] || { echo "endpoints: $want"; return 1; }
  wait_headless "$want" || return 1
  echo "all 3 ready pod IPs in DNS $(( $(now_ms) - t0 )) ms after the rollout finished: $(echo "$want" | paste -sd' ' -)"
}

pod_to_api_server() {
  # Through the Service IP 10.0.0.1:443, by name, TLS, with the mounted token
  # (a Role lets it list pods; anonymous would get 403). Expanded in the pod:
  # shellcheck disable=SC2016
  kn exec client -- sh -c 'timeout 5 wget -qO- --no-check-certificate \
      --header "Authorization: Bearer $(cat /var/run/secrets/kubernetes.io/serviceaccount/token)" \
      https://kubernetes.default.svc/api/v1/namespaces/'"$NS"'/pods/client' \
    | grep -o '"name": *"client"' | head -n1
}
api_server_env() {
  kn exec client -- env | grep -E '^KUBERNETES_SERVICE_(HOST|PORT)=' | sort | paste -sd' ' - \
    | tee /dev/stderr | grep -qx 'KUBERNETES_SERVICE_HOST=10.0.0.1 KUBERNETES_SERVICE_PORT=443'
}

logs_and_exec() {
  local pod; pod=$(web_pod)
  kn logs "$pod" | tee /dev/stderr | grep -q "serving as $pod" && kn exec "$pod" -- cat /www/index.html | grep -qx "$pod"
}

check "node flightdeck-node Ready and untainted" node_ready
check "cluster.sh import loads a buildah oci-archive into the node" import_image
T_APPLY=$(now_ms)
check "workloads applied" apply_workloads
check "pods Running and Ready" pods_running
# Timings from the objects' own status (whole seconds, the API's precision);
# cluster.sh start also logs "node ... Ready after N ms" from its own start.
ready_after_s() {
  k "$@" -o jsonpath='{.metadata.creationTimestamp} {.status.conditions[?(@.type=="Ready")].lastTransitionTime}' \
    | { read -r created ready || true; echo $(( $(date -d "$ready" +%s) - $(date -d "$created" +%s) )); }
}
echo "# timings: node registered -> Ready $(ready_after_s get node flightdeck-node 2>/dev/null || echo '?') s," \
     "pod client created -> Ready $(ready_after_s -n "$NS" get pod client 2>/dev/null || echo '?') s"
check "host -> pod IP" host_to_pod
check "host -> ClusterIP" host_to_cluster_ip
check "pod -> ClusterIP" pod_to_cluster_ip
check "pod -> web.$NS by name (cluster DNS, search path)" pod_to_service_name
check "headless Service resolves to the ready pod" headless_one
check "headless Service follows a scale-up to 3" headless_scale
check "pod env points at the API server Service" api_server_env
check "pod -> API server (kubernetes.default.svc, ServiceAccount token)" pod_to_api_server
check "kubectl logs and kubectl exec" logs_and_exec
echo "# $passed passed, $failed failed"
[ "$failed" = 0 ]
