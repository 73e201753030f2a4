#!/usr/bin/env bash
# smoke-node.sh - self-test of the node mode (cluster.sh start --node), run by
# smoke.sh after the API-server checks: a tiny busybox image built locally
# with buildah is imported, then smoke-node-in-cluster.sh checks pods,
# Services, DNS, the in-cluster API and kubectl logs/exec through
# with-cluster.sh --node; after it, the machine must be as clean as before:
# no process, mount, bridge, KUBE-* iptables chain or cgroup of the cluster.
#
# Usage: tests/control-plane/smoke-node.sh
#   FLIGHTDECK_SMOKE_TIMEOUT  seconds for the checks once the cluster is up
#                             (default 600)
# Needs root (bridge, iptables, mounts); exits 0 with a "skip" line without it.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${FLIGHTDECK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flightdeck}
IMAGE_TAR=$CACHE/local-k8s/node/smoke-busybox.tar
# shellcheck source=lib/process.sh
. "$HERE/lib/process.sh"

if [ "$(id -u)" != 0 ]; then echo "ok - node checks # skip: they need root"; exit 0; fi

# build_image: FROM scratch + Debian's busybox-static, with buildah as the
# packaging tests use it (vfs storage, chroot isolation: no daemon, no
# overlay-in-overlay), in a private storage root so no other build's images
# are touched. Cached: the image never changes.
build_image() {
  [ -s "$IMAGE_TAR" ] && return 0
  local tmp pkg
  for pkg in buildah busybox-static; do
    dpkg -s "$pkg" >/dev/null 2>&1 && continue
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$pkg" >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
           --no-install-recommends "$pkg" >/dev/null 2>&1; } || { echo "apt-get install $pkg failed" >&2; return 1; }
  done
  tmp=$(mktemp -d)
  cp /bin/busybox "$tmp/busybox"
  cat >"$tmp/Containerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ENTRYPOINT ["/bin/sh"]
EOF
  mkdir -p "$(dirname "$IMAGE_TAR")"
  if buildah --root "$tmp/root" --runroot "$tmp/runroot" --storage-driver vfs bud --isolation chroot \
       -q -t localhost/flightdeck/smoke-busybox:1 -f "$tmp/Containerfile" "$tmp" >"$tmp/build.log" 2>&1 \
     && buildah --root "$tmp/root" --runroot "$tmp/runroot" --storage-driver vfs push -q \
       localhost/flightdeck/smoke-busybox:1 "oci-archive:$IMAGE_TAR.tmp:localhost/flightdeck/smoke-busybox:1" \
       >>"$tmp/build.log" 2>&1; then
    mv "$IMAGE_TAR.tmp" "$IMAGE_TAR"
  else
    cat "$tmp/build.log" >&2
  fi
  buildah --root "$tmp/root" --runroot "$tmp/runroot" --storage-driver vfs rm -a >/dev/null 2>&1 || true
  chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"
  [ -s "$IMAGE_TAR" ]
}

t0=$(date +%s)
if build_image; then echo "ok - busybox test image built with buildah ($(( $(date +%s) - t0 )) s)"
else echo "not ok - busybox test image built with buildah"; exit 1; fi

# The machine before: what the cluster must not leave behind is compared to it.
kube_chains() { iptables-save 2>/dev/null | grep -cE '^:KUBE-|-j KUBE-'; }
chains_before=$(kube_chains)
containerd_dir_before=$([ -e /run/containerd ] && echo yes || echo no)

state=$(mktemp)
t0=$(date +%s)
FLIGHTDECK_SMOKE_STATE=$state FLIGHTDECK_SMOKE_IMAGE_TAR=$IMAGE_TAR \
  "$HERE/with-cluster.sh" --node --timeout "${FLIGHTDECK_SMOKE_TIMEOUT:-600}" "$HERE/smoke-node-in-cluster.sh"
rc=$?
echo "# node smoke: $(( $(date +%s) - t0 )) s in all (start, checks, stop)"

leftovers=
if read -r run_dir <"$state" 2>/dev/null; then
  [ ! -d "$run_dir" ] || leftovers="$leftovers run-dir:$run_dir"
  while read -r name pid start; do
    gone "$pid" "$start" || leftovers="$leftovers $name($pid)"
  done < <(tail -n +2 "$state")
  if grep -qF "$run_dir/" /proc/self/mountinfo; then leftovers="$leftovers mounts-under-run-dir"; fi
  cluster_name=$(basename "$run_dir"); cluster_name=${cluster_name#flightdeck-cluster-"$(id -u)"-}
  for c in /sys/fs/cgroup/*/flightdeck-"$cluster_name"; do
    [ -e "$c" ] && leftovers="$leftovers cgroup:$c"
  done
  for p in /proc/[0-9]*; do
    case $(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) in
      *"$run_dir/"*) leftovers="$leftovers process:${p#/proc/}" ;;
    esac
  done
else
  leftovers="$leftovers no-state-file"
fi
if ip link show flightdeck0 >/dev/null 2>&1; then leftovers="$leftovers bridge:flightdeck0"; fi
chains_after=$(kube_chains)
[ "$chains_after" = "$chains_before" ] || leftovers="$leftovers iptables:KUBE-*($chains_before->$chains_after)"
if [ "$containerd_dir_before" = no ] && [ -e /run/containerd ]; then leftovers="$leftovers /run/containerd"; fi
if [ -z "$leftovers" ]; then
  echo "ok - with-cluster.sh --node left the machine clean"
else
  echo "not ok - with-cluster.sh --node left the machine clean"; echo "    left behind:$leftovers"; rc=1
fi
rm -f "$state"
exit "$rc"
