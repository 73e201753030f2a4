# shellcheck shell=bash
# Building Kubernetes 1.20.2 (kube-apiserver, kube-controller-manager, and for
# the node mode kube-scheduler, kubelet and kube-proxy) from Debian's
# kubernetes source package, once per machine, into the cache:
#   $FLIGHTDECK_CACHE/local-k8s/1.20.2/bin/{kube-*,kubelet,etcd}
# All come from the same tree, recipe and Go; a cache holding only the older
# two-binary build builds the three missing ones once, on the first node-mode
# start (or `cluster.sh build`). Binaries already there are never replaced: a
# running cluster's processes are recognised by /proc/PID/exe, which a
# replaced file would turn into "... (deleted)" and orphan them.
# Why 1.20.2: it is the newest full Kubernetes tree any reachable registry
# carries (later Debian versions are stripped to kubectl). The tree does not
# build as it comes, for three reasons handled in build_kubernetes below:
# Kubernetes 1.20 builds only in GOPATH mode (module mode fails on go.mod
# updates); pkg/generated/openapi is generated at build time and missing from
# the tarball (without it kube-apiserver does not link); and the vendored
# modern-go/reflect2 1.0.1, built with Go >= 1.18, crashes the apiserver on the
# first custom resource it encodes (Debian's 1.0.2 replaces it). Sourced by
# cluster.sh.

K8S_VERSION=1.20.2
K8S_DEB_SRC_VERSION=1.20.5+really1.20.2-1.1+deb12u1
K8S_ORIG_TARBALL=kubernetes_1.20.5+really1.20.2.orig.tar.gz
K8S_ORIG_SHA256=b83c0780efb182d928dc63d46488a847f161f04e40a94b96bf5247dd671ecdfc

K8S_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)

k8s_binaries_present() {
  local cmd
  for cmd in "${K8S_COMMANDS[@]}"; do [ -x "$BIN_DIR/$cmd" ] || return 1; done
}

# binaries_present [node]: what a start needs; API-server-only mode needs
# only the control plane, so it stays fast while a node build is missing.
binaries_present() {
  [ -x "$BIN_DIR/etcd" ] || return 1
  if [ "${1:-}" = node ]; then k8s_binaries_present
  else [ -x "$BIN_DIR/kube-apiserver" ] && [ -x "$BIN_DIR/kube-controller-manager" ]; fi
}

# ensure_binaries [node]: build or install whatever is missing. The flock on
# .build.lock makes a second caller (another cluster, another script, the
# lead's first build) wait for the running build instead of starting its own.
ensure_binaries() {
  binaries_present "${1:-}" && return 0
  ensure_tools
  mkdir -p "$VER_DIR"
  local lock_fd
  exec {lock_fd}>"$VER_DIR/.build.lock"
  if ! flock -n "$lock_fd"; then
    say "another build holds $VER_DIR/.build.lock; waiting for it"
    flock "$lock_fd"
  fi
  ensure_etcd
  if ! binaries_present "${1:-}"; then build_kubernetes; fi
  exec {lock_fd}>&-
}

# debian_mirror: the Debian archive apt already uses here (deb822 or one-line
# sources), so the direct pool download goes where apt goes.
debian_mirror() {
  local uri
  uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ {print $2}' | grep -E '/debian/?$' | head -n1)
  [ -n "$uri" ] || uri=$(grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
                         | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' | grep -E '/debian/?$' | head -n1)
  echo "${FLIGHTDECK_DEBIAN_MIRROR:-${uri:-http://deb.debian.org/debian}}"
}

# fetch_source DEST: the orig tarball, verified against the pinned sha256.
fetch_source() {
  local dest=$1 dir mirror
  dir=$(dirname "$dest")
  mkdir -p "$dir"
  if [ -f "$dest" ] && echo "$K8S_ORIG_SHA256  $dest" | sha256sum -c --status; then return 0; fi
  rm -f "$dest"
  say "downloading Debian source package kubernetes=$K8S_DEB_SRC_VERSION"
  # Where deb-src is configured, apt-get source is the ordinary client.
  (cd "$dir" && apt-get source -q --download-only "kubernetes=$K8S_DEB_SRC_VERSION" >>"$CACHE_DIR/apt.log" 2>&1) || true
  if [ ! -f "$dest" ]; then
    mirror=$(debian_mirror)
    if ! curl -fsSL --retry 3 -o "$dest.part" "${mirror%/}/pool/main/k/kubernetes/$K8S_ORIG_TARBALL"; then
      rm -f "$dest.part"
      die "cannot download $K8S_ORIG_TARBALL (apt-get source and ${mirror%/}/pool both failed)"
    fi
    mv "$dest.part" "$dest"
  fi
  echo "$K8S_ORIG_SHA256  $dest" | sha256sum -c --status || { rm -f "$dest"; die "checksum mismatch for $K8S_ORIG_TARBALL"; }
}

build_kubernetes() {
  local go build_dir src log t0 reflect2_tmp reflect2 cmd
  local -a missing=()
  for cmd in "${K8S_COMMANDS[@]}"; do [ -x "$BIN_DIR/$cmd" ] || missing+=("$cmd"); done
  [ ${#missing[@]} -gt 0 ] || return 0
  go=$(find_go)
  build_dir=$VER_DIR/build
  src=$build_dir/gopath/src/k8s.io/kubernetes
  log=$VER_DIR/build.log
  t0=$(date +%s)
  echo "flightdeck-cluster: one-time build of Kubernetes $K8S_VERSION (${missing[*]}) with" \
       "$("$go" version | awk '{print $3}') (about 10-20 min on 2 cores; log: $log)" >&2
  fetch_source "$VER_DIR/dl/$K8S_ORIG_TARBALL"
  chmod -R u+w "$build_dir" 2>/dev/null || true
  rm -rf "$build_dir"
  mkdir -p "$src"
  tar -xzf "$VER_DIR/dl/$K8S_ORIG_TARBALL" -C "$src" --strip-components=1
  [ -f "$src/vendor/modules.txt" ] || die "the source tarball has no vendor/ tree"

  # Built with Go >= 1.18, the vendored modern-go/reflect2 v1.0.1 crashes the
  # apiserver (SIGSEGV in mapiterinit) on the first custom resource it encodes.
  # Debian's golang-github-modern-go-reflect2-dev is v1.0.2, which fixes it.
  reflect2_tmp=$(mktemp -d)
  deb_extract golang-github-modern-go-reflect2-dev "$reflect2_tmp"
  reflect2=$reflect2_tmp/usr/share/gocode/src/github.com/modern-go/reflect2
  [ -f "$reflect2/go_above_118.go" ] || die "Debian's reflect2 is older than 1.0.2"
  rm -f "$src"/vendor/github.com/modern-go/reflect2/*.go "$src"/vendor/github.com/modern-go/reflect2/*.s
  cp "$reflect2"/*.go "$reflect2"/*.s "$src/vendor/github.com/modern-go/reflect2/"
  rm -rf "$reflect2_tmp"

  (
    # Kubernetes 1.20 builds in GOPATH mode (its hack/lib sets GO111MODULE=off);
    # module mode fails on go.mod updates. CGO off: static binaries, no gcc.
    unset GOROOT
    go_dir=$(dirname "$go")
    export GO111MODULE=off GOFLAGS="" GOPROXY=off GOTOOLCHAIN=local GOSUMDB=off CGO_ENABLED=0 \
           GOPATH="$build_dir/gopath" GOCACHE="$build_dir/gocache" PATH="$go_dir:$PATH"
    cd "$src" || exit 1
    exec >>"$log" 2>&1
    echo "== $(date -u +%FT%TZ) $(go version)"
    # pkg/generated/openapi is generated at build time and absent from the
    # tarball; without it kube-apiserver does not link.
    go build -o "$build_dir/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen || exit 1
    inputs=$(find -H . \( -path './_*' -o -path './.*' -o -path ./vendor \) -prune -o -type f -name '*.go' -print \
             | sed 's|^\./staging/src|vendor|; s|^\./||' \
             | grep -v -e '^vendor/k8s.io/code-generator/' -e '^vendor/k8s.io/sample-apiserver/' \
             | xargs grep -l '^// *+k8s:' | xargs grep -l '+k8s:openapi-gen=' \
             | xargs -n1 dirname | LC_ALL=C sort -u | sed 's|^|k8s.io/kubernetes/|' | paste -sd, -)
    [ -n "$inputs" ] || { echo "no +k8s:openapi-gen packages found"; exit 1; }
    "$build_dir/openapi-gen" --logtostderr -i "$inputs" -p k8s.io/kubernetes/pkg/generated/openapi \
      -O zz_generated.openapi -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt \
      -r "$build_dir/openapi-violations.report" || exit 1
    # The version the binaries report (kubectl version, /version).
    vendored=k8s.io/kubernetes/vendor/k8s.io
    ldflags="-s -w"
    for pkg in client-go/pkg/version component-base/version; do
      ldflags="$ldflags -X $vendored/$pkg.gitVersion=v$K8S_VERSION -X $vendored/$pkg.gitMajor=1 -X $vendored/$pkg.gitMinor=20"
      ldflags="$ldflags -X $vendored/$pkg.gitTreeState=clean -X $vendored/$pkg.buildDate=2021-01-13T00:00:00Z"
    done
    mkdir -p "$build_dir/out"
    for cmd in "${missing[@]}"; do
      echo "== go build ./cmd/$cmd"
      go build -tags selinux,notest -ldflags "$ldflags" -o "$build_dir/out/$cmd" "./cmd/$cmd" || exit 1
    done
  ) || die "building Kubernetes failed; see $log"
  mkdir -p "$BIN_DIR"
  for cmd in "${missing[@]}"; do mv "$build_dir/out/$cmd" "$BIN_DIR/"; done
  # The tree and Go's build cache are ~3 GB and not needed once the binaries exist.
  if [ -z "${FLIGHTDECK_CLUSTER_KEEP_BUILD:-}" ]; then
    chmod -R u+w "$build_dir" 2>/dev/null || true
    rm -rf "$build_dir"
  fi
  echo "flightdeck-cluster: Kubernetes $K8S_VERSION built in $(( $(date +%s) - t0 ))s" | tee -a "$log" >&2
}
