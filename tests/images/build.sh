#!/usr/bin/env bash
# The node images: everything a one-node cluster (tests/control-plane/
# cluster.sh start --node) runs, built with buildah (no Docker engine) into
# docker archives that `cluster.sh import` loads into the node's containerd.
#
# Usage:
#   tests/images/build.sh      build what changed (cached), print the five tar paths
#   tests/images/load.sh       build, import into the running node, print the refs
#
# Images (REGISTRY defaults to localhost/flightdeck, VERSION to Cargo.toml's):
#   REGISTRY/flightdeck-operator:VERSION   } the Dockerfile's targets with
#   REGISTRY/flightdeck-gateway:VERSION    } BINARIES=prebuilt: the refs
#   REGISTRY/flightdeck-reader:VERSION     } `make deploy IMAGE_REGISTRY=REGISTRY` pins
#   REGISTRY/flightdeck-test-engine:VERSION   flightdeck-test-engine as the entry
#       point; it takes llama-server's flags, so a stack uses it as
#       `engine: llamacpp` + `image:` this ref (see test-engine.Containerfile)
#   REGISTRY/llamacpp-smollm2:VERSION      static llama-server (tests/lib/llama.sh) as
#       the entry point, SmolLM2 at /models/SmolLM2-135M-Instruct.Q4_1.gguf
#       (a stack's readerConfig.modelName)
# Both engine images carry curl (Debian's, with its library closure), which the
# operator's llama.cpp probes exec, and run as 65532.
#
# Cache: ~/.cache/flightdeck/images/NAME.tar, rebuilt only when the hash of its
# inputs (Containerfile, every file copied in, the ref) changed.
# Environment: FLIGHTDECK_IMAGE_REGISTRY, FLIGHTDECK_IMAGE_VERSION,
# FLIGHTDECK_BIN_DIR (see tests/lib/build.sh). Progress goes to stderr.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$root/tests/images
cache=${FLIGHTDECK_CACHE:-$HOME/.cache/flightdeck}/images
registry=${FLIGHTDECK_IMAGE_REGISTRY:-localhost/flightdeck}
version=${FLIGHTDECK_IMAGE_VERSION:-$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)}
model_file=SmolLM2-135M-Instruct.Q4_1.gguf

log() { echo "images: $*" >&2; }

install_tools() {
  local sudo=
  command -v buildah >/dev/null 2>&1 && return 0
  log "apt-get install buildah"
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq buildah >&2
}

# stage_curl DIR: curl, every shared library it loads (ldd) and the dynamic
# loader, at their absolute paths under DIR. The engine images are FROM
# scratch; the operator's llama.cpp probes run `curl -fsS ... /health` inside.
stage_curl() {
  local dir=$1 curl lib
  curl=$(command -v curl) || { log "curl is needed on the build machine (its copy goes into the engine images)"; exit 1; }
  curl=$(readlink -f "$curl")
  mkdir -p "$dir/usr/bin"
  cp "$curl" "$dir/usr/bin/curl"
  # ldd prints "name => /path (addr)" for libraries and "/path (addr)" for the loader.
  while read -r lib; do
    mkdir -p "$dir$(dirname "$lib")"
    cp -L "$lib" "$dir$lib"
  done < <(ldd "$curl" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
  mkdir -p "$dir/tmp" "$dir/etc"
  # curl reads no config, but a passwd entry for 65532 keeps tools quiet.
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$dir/etc/passwd"
  chmod 1777 "$dir/tmp"
}

# input_hash DIR FILE...: one hash over a build context and the other inputs.
input_hash() {
  local dir=$1
  shift
  {
    (cd "$dir" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
    for f in "$@"; do
      if [ -f "$f" ]; then sha256sum "$f"; else echo "$f"; fi
    done
  } | sha256sum | cut -c1-16
}

# build NAME REF CONTEXT CONTAINERFILE [bud args...]: NAME.tar, a docker
# archive of REF, unless the cached one has the same inputs.
build() {
  local name=$1 ref=$2 ctx=$3 file=$4 key tar start
  shift 4
  tar=$cache/$name.tar
  key=$(input_hash "$ctx" "$file" "$ref" "$*")
  if [ -s "$tar" ] && [ "$(cat "$tar.key" 2>/dev/null)" = "$key" ]; then
    log "$ref: cached ($tar)"
    echo "$tar"
    return
  fi
  start=$(date +%s)
  log "$ref: building"
  buildah "${store[@]}" bud --isolation chroot --layers=false -f "$file" "$@" -t "$ref" "$ctx" >&2
  rm -f "$tar" "$tar.key"
  buildah "${store[@]}" push --quiet "$ref" "docker-archive:$tar.tmp:$ref" >&2
  buildah "${store[@]}" rmi "$ref" >/dev/null 2>&1 || true
  mv "$tar.tmp" "$tar"
  echo "$key" >"$tar.key"
  log "$ref: built in $(( $(date +%s) - start ))s, $(du -h "$tar" | cut -f1)"
  echo "$tar"
}

install_tools
mkdir -p "$cache"
# One builder at a time: the tars and the buildah store are shared.
exec 9>"$cache/.lock"
flock 9

bin_dir=$("$root/tests/lib/build.sh")

work=$(mktemp -d "$cache/.work.XXXXXX")
# vfs: no overlay or fuse needed; the store lives only for this run (the tars
# are the cache), so vfs' full copies per layer cost disk only briefly.
store=(--root "$work/root" --runroot "$work/runroot" --storage-driver vfs)
cleanup() {
  buildah "${store[@]}" rm --all >/dev/null 2>&1 || true
  chmod -R u+w "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The three Dockerfile targets, from a context holding only dist/.
mkdir -p "$work/ctx-dist/dist"
cp "$bin_dir"/flightdeck-{operator,gateway,reader} "$work/ctx-dist/dist/"
for target in operator gateway reader; do
  build "flightdeck-$target" "$registry/flightdeck-$target:$version" "$work/ctx-dist" \
    "$root/Dockerfile" --build-arg BINARIES=prebuilt --target "$target"
done

mkdir -p "$work/ctx-test-engine"
stage_curl "$work/ctx-test-engine/curl"
cp "$bin_dir/flightdeck-test-engine" "$work/ctx-test-engine/"
build flightdeck-test-engine "$registry/flightdeck-test-engine:$version" "$work/ctx-test-engine" \
  "$here/test-engine.Containerfile"

# Last: the first llama-server build takes many minutes.
llama_server=$("$root/tests/lib/llama.sh" server-path)
model=$("$root/tests/lib/llama.sh" model-path)
mkdir -p "$work/ctx-llamacpp"
stage_curl "$work/ctx-llamacpp/curl"
cp "$llama_server" "$work/ctx-llamacpp/llama-server"
# A hard link when the cache shares the file system: the model is 98 MB.
ln "$model" "$work/ctx-llamacpp/$model_file" 2>/dev/null || cp "$model" "$work/ctx-llamacpp/$model_file"
build llamacpp-smollm2 "$registry/llamacpp-smollm2:$version" "$work/ctx-llamacpp" \
  "$here/llamacpp.Containerfile" --build-arg "MODEL_FILE=$model_file"
