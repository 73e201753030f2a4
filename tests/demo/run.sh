#!/usr/bin/env bash
# `make demo`: Flightdeck end to end, every step printed.
#
#  1. builds the binaries (release: tests/lib/build.sh);
#  2. on a fresh local Kubernetes control plane (tests/control-plane): installs
#     the CRD, runs the operator, applies examples/quickstart.yaml and shows the
#     objects and status the operator produced (tests/demo/in-cluster.sh);
#  3. runs the same file locally with `flightdeck up` (llama.cpp on the CPU),
#     sends one chat completion, stops it with SIGINT (what Ctrl-C sends) and
#     checks it exits cleanly and leaves no process behind.
#
# Exits non-zero on any failure. Every wait is bounded; everything started is
# stopped on every exit path.
#
# Environment: FLIGHTDECK_DEMO_UP_TIMEOUT (seconds for `flightdeck up` to serve,
# default 1200: the first run builds llama.cpp), CARGO_TARGET_DIR and
# FLIGHTDECK_BIN_DIR (see tests/lib/build.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
# shellcheck source=tests/demo/lib.sh
. "$ROOT/tests/demo/lib.sh"

up_timeout=${FLIGHTDECK_DEMO_UP_TIMEOUT:-1200}
log_dir=$(mktemp -d "${TMPDIR:-/tmp}/flightdeck-demo.XXXXXX")
export FLIGHTDECK_DEMO_LOG_DIR=$log_dir
up_pid=
tail_pid=
started_at=$SECONDS

# stop_up SIGNAL: signal `flightdeck up` and, after 30 s, kill its whole group.
stop_up() {
  [ -n "$up_pid" ] || return 0
  if kill -0 "$up_pid" 2>/dev/null; then
    kill "-$1" "$up_pid" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$up_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  # up runs in its own process group (setsid): nothing of it may outlive us.
  kill -KILL -- "-$up_pid" 2>/dev/null || true
  wait "$up_pid" 2>/dev/null || true
  up_pid=
}

on_exit() {
  local rc=$?
  stop_up TERM
  if [ -n "$tail_pid" ]; then kill "$tail_pid" 2>/dev/null || true; wait "$tail_pid" 2>/dev/null || true; fi
  if [ "$rc" = 0 ]; then
    rm -rf "$log_dir"
    printf '\n%sdemo: OK (%ss)%s\n' "$green" "$((SECONDS - started_at))" "$plain"
  else
    echo "demo: logs kept in $log_dir" >&2
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "Building flightdeck-operator, flightdeck (CLI), flightdeck-gateway and flightdeck-reader (release)"
say "tests/lib/build.sh: the project's one release build (static binaries, also used by the images)"
bin=$(tests/lib/build.sh) || fail "the release build failed"
say "binaries in $bin"

step "Part 1: the operator on a local Kubernetes control plane (kube-apiserver + etcd on 127.0.0.1)"
say "starting a fresh cluster with tests/control-plane/with-cluster.sh (the first run on a machine builds it)"
tests/control-plane/with-cluster.sh --timeout 900 tests/demo/in-cluster.sh "$bin"
say "cluster stopped"

step "Part 2: the same InferenceStack on this machine: flightdeck up -f examples/quickstart.yaml"
port=$(free_port)
up_log=$log_dir/up.log
say "tests/lib/llama.sh: llama-server and SmolLM2 (the first run builds llama-server, 10+ minutes)"
llama_server=$(tests/lib/llama.sh server-path) || fail "building llama-server failed"
model_file=$(tests/lib/llama.sh model-path) || fail "fetching SmolLM2 failed"
say "$bin/flightdeck up -f examples/quickstart.yaml --listen 127.0.0.1:$port --llama-server $llama_server --model-file $model_file"
say "(its output follows)"
: >"$up_log"
setsid "$bin/flightdeck" up -f examples/quickstart.yaml --listen "127.0.0.1:$port" \
  --llama-server "$llama_server" --model-file "$model_file" </dev/null >"$up_log" 2>&1 &
up_pid=$!
tail -n +1 --pid="$up_pid" -f "$up_log" 2>/dev/null | sed -u 's/^/    | /' &
tail_pid=$!

serving() {
  kill -0 "$up_pid" 2>/dev/null || { wait "$up_pid"; fail "flightdeck up exited early (status $?)"; }
  grep -q "Flightdeck is serving" "$up_log" &&
    curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null
}
up_started=$SECONDS
wait_until "$up_timeout" "flightdeck up serving on 127.0.0.1:$port" serving
sleep 0.5 # let the tail print the banner before our own lines
say "serving after $((SECONDS - up_started))s"

step "One chat completion through the gateway (model smollm2)"
request='{"model":"smollm2","messages":[{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":32}'
say "curl -s http://127.0.0.1:$port/v1/chat/completions -H 'Content-Type: application/json' -d '$request'"
answer=$(curl -sS --fail-with-body --max-time 120 "http://127.0.0.1:$port/v1/chat/completions" \
  -H 'Content-Type: application/json' -d "$request") || fail "chat completion failed: $answer"
content=$(printf '%s' "$answer" | python3 -c '
import json, sys
body = json.load(sys.stdin)
text = body["choices"][0]["message"]["content"]
if not text.strip():
    sys.exit("empty completion")
print(text.strip())
') || fail "unexpected answer: $answer"
say "answer: $content"

step "Stopping flightdeck up with SIGINT (what Ctrl-C sends)"
group_before=$(descendants "$up_pid" | tr '\n' ' ')
say "processes under flightdeck up (pid $up_pid): ${group_before:-none}"
kill -INT "$up_pid"
exited() { ! kill -0 "$up_pid" 2>/dev/null; }
wait_until 30 "flightdeck up exiting after SIGINT" exited
status=0
wait "$up_pid" || status=$?
up_pid_was=$up_pid
up_pid=
kill "$tail_pid" 2>/dev/null || true
wait "$tail_pid" 2>/dev/null || true
tail_pid=
# 0, or 130 (the shell convention for "ended by SIGINT"), is a clean stop.
[ "$status" = 0 ] || [ "$status" = 130 ] || fail "flightdeck up exited with status $status after SIGINT"
left=""
for pid in $group_before $(pgrep -g "$up_pid_was" 2>/dev/null || true); do
  if kill -0 "$pid" 2>/dev/null; then left="$left $pid"; fi
done
if [ -n "$left" ]; then
  ps -o pid,pgid,args -p "${left# }" >&2 || true
  # shellcheck disable=SC2086 # a list of pids
  kill -KILL -- "-$up_pid_was" $left 2>/dev/null || true
  fail "processes left behind after flightdeck up stopped:$left"
fi
say "flightdeck up exited with status $status; no engine, gateway or reader process is left"
