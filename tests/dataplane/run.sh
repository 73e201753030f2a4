#!/usr/bin/env bash
# Data-path scenarios: real gateway, reader, test-engine and llama.cpp
# processes on 127.0.0.1, driven by the official `openai` Python client.
#
# Usage: tests/dataplane/run.sh [pytest args...]   e.g. -k reload, -x
# Installs its Python needs into the shared venv (tests/lib/venv.sh), the real
# engine (tests/lib/llama.sh, cached), builds the release binaries
# (tests/lib/build.sh, the project's one release build), runs pytest.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

bin=$("$repo/tests/lib/venv.sh" "$here/requirements.txt")
# The real engine for test_real_engine.py: llama-server and SmolLM2 (the first
# run builds llama-server from source, 10+ min on 2 cores; cached after).
"$repo/tests/lib/llama.sh" install >/dev/null

FLIGHTDECK_BIN_DIR=$("$repo/tests/lib/build.sh")
export FLIGHTDECK_BIN_DIR

cd "$here"
status=0
"$bin/python" -m pytest -p no:cacheprovider -ra "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "dataplane: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit "$status"
