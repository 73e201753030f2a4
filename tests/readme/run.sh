#!/usr/bin/env bash
# The README test (`make test-readme`): every sh/bash/console/python block of
# README.md carries a `<!-- readme-test: MODE -->` marker and is run in that
# mode (see tests/readme/README.md). Prints each block, then
# `readme: N passed, M failed`; exits non-zero if any failed.
#
#   tests/readme/run.sh [--readme PATH] [--modes ci,host,up,up-client,cluster]
#
# Environment: README_TEST_UP_TIMEOUT (default 1200 s for the `up` block's
# gateway to answer; the first run builds llama.cpp), README_TEST_HOST_TIMEOUT
# (3600 s per host block: `make demo` may build the control plane),
# README_TEST_BLOCK_TIMEOUT (600 s per cluster and up-client block),
# CARGO_TARGET_DIR and FLIGHTDECK_BIN_DIR (see tests/lib/build.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

echo "readme: installing the test's Python tools (cached in the shared venv)"
bin=$(tests/lib/venv.sh tests/readme/requirements.txt)

# yaml blocks are rendered with flightdeck, cluster blocks get the operator.
bin_dir=$(tests/lib/build.sh)

# The marker check must catch what it exists for: a quick run on the fixture of
# wrong markers (tests/readme/selftest.sh runs every fixture, cluster included).
summary=$("$bin/python" tests/readme/runner.py --readme tests/readme/testdata/bad.md --modes "" --bin-dir "$bin_dir" | tail -n 1) || true
if [ "$summary" != "readme: 0 passed, 5 failed" ]; then
  echo "readme: the runner missed wrong markers in tests/readme/testdata/bad.md (got '$summary')" >&2
  exit 1
fi

exec "$bin/python" tests/readme/runner.py --bin-dir "$bin_dir" --python "$bin/python" "$@"
