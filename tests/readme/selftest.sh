#!/usr/bin/env bash
# Self-test of the README runner on its fixtures (tests/readme/testdata):
#   bad.md     every way to get the markers wrong -> "readme: 0 passed, 5 failed"
#   leaky.md   an `up` that leaves a process after SIGINT -> "readme: 0 passed, 1 failed"
#   README.md  every mode, cluster blocks on a fresh control plane -> no failure
# The fake `up` stack listens on a free loopback port, not 8080.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
bin=$(tests/lib/venv.sh tests/readme/requirements.txt)
bin_dir=$(tests/lib/build.sh)
free_port() { "$bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
failed=0

# expect FIXTURE SUMMARY: the runner's last line on FIXTURE must be SUMMARY.
expect() {
  local fixture=$1 want=$2 out got
  echo "== selftest: $fixture (want: $want)"
  out=$(README_TEST_UP_URL=http://127.0.0.1:$(free_port) \
    "$bin/python" tests/readme/runner.py --readme "tests/readme/testdata/$fixture" \
    --bin-dir "$bin_dir" --python "$bin/python" 2>&1) || true
  printf '%s\n' "$out" | sed 's/^/   /'
  got=$(printf '%s\n' "$out" | tail -n 1)
  if [ "$got" = "$want" ]; then
    echo "== selftest: $fixture ok"
  else
    echo "== selftest: $fixture FAILED: got '$got'"
    failed=1
  fi
}

expect bad.md "readme: 0 passed, 5 failed"
expect leaky.md "readme: 0 passed, 1 failed"
expect README.md "readme: 11 passed, 0 failed"
exit "$failed"
