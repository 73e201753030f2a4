#!/usr/bin/env bash
# Data-path benchmark: prints figures, asserts nothing about speed.
#
#  1. overhead: the same deterministic test engine (no TTFT, no token delay)
#     reached (a) directly, (b) through gateway + reader, (c) through nginx
#     proxy_pass with a keepalive upstream; req/s and p50/p99 from `hey`.
#  2. a slow replica: three engines of 4 slots each, one 3x slower per token;
#     pull (gateway + three readers) vs round-robin (nginx upstream of three
#     servers) at a fixed ~80% of total capacity: p50/p99.
#  3. streaming: tokens/s of one long SSE answer, direct vs through the gateway.
#
# Usage: tests/bench/dataplane.sh   (env: BENCH_SECONDS=8 per hey run; FLIGHTDECK_BIN_DIR)
# Installs hey and nginx with apt-get when missing; builds the release
# binaries with tests/lib/build.sh.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
seconds=${BENCH_SECONDS:-8}

need_apt=()
command -v hey >/dev/null || need_apt+=(hey)
[ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "bench: apt-get install ${need_apt[*]}" >&2
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need_apt[@]}" >&2
fi
venv_bin=$("$repo/tests/lib/venv.sh" "$repo/tests/dataplane/requirements.txt")

# The project's one release build (FLIGHTDECK_BIN_DIR: binaries built elsewhere).
bin=$("$repo/tests/lib/build.sh")

work=$(mktemp -d /tmp/flightdeck-bench.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  "$venv_bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_http() { # URL
  for _ in $(seq 1 200); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench: $1 did not come up; logs in $work" >&2
  tail -n 20 "$work"/*.log >&2 || true
  exit 1
}

start() { # NAME CMD...
  local name=$1; shift
  "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
}

engine() { # NAME PORT EXTRA-FLAGS...
  local name=$1 port=$2; shift 2
  start "$name" "$bin/flightdeck-test-engine" --listen "127.0.0.1:$port" --model bench "$@"
  wait_http "http://127.0.0.1:$port/health"
}

gateway() { # NAME PORT READER-PORT GROUP
  printf '{"queue":{"maxDepth":100000,"requestTimeoutSeconds":120},"models":{"bench":{"consumerGroups":["%s"]}}}' "$4" \
    >"$work/$1.json"
  FLIGHTDECK_READER_TOKEN=bench RUST_LOG=warn start "$1" "$bin/flightdeck-gateway" \
    --listen "127.0.0.1:$2" --reader-listen "127.0.0.1:$3" --config "$work/$1.json" --log-format text
  wait_http "http://127.0.0.1:$2/healthz"
}

# The reader's /readyz turns ready only when a long-poll returns (up to 20 s
# idle), so wait instead until the gateway counts N readers pulling for GROUP.
wait_pulling() { # GATEWAY-PORT GROUP N
  for _ in $(seq 1 300); do
    local seen
    seen=$(curl -fsS "http://127.0.0.1:$1/metrics" 2>/dev/null |
      awk -v g="flightdeck_gateway_connected_readers{group=\"$2\"}" '$1 == g {print int($2)}')
    [ "${seen:-0}" -ge "$3" ] && return 0
    sleep 0.1
  done
  echo "bench: readers for $2 did not start pulling; logs in $work" >&2
  exit 1
}

reader() { # NAME GATEWAY-READER-PORT GROUP ENGINE-PORT CAPACITY
  local admin; admin=$(free_port)
  FLIGHTDECK_READER_TOKEN=bench RUST_LOG=warn start "$1" "$bin/flightdeck-reader" \
    --gateway-urls "http://127.0.0.1:$2" --consumer-groups "$3" \
    --engine-url "http://127.0.0.1:$4" --capacity "$5" --admin-listen "127.0.0.1:$admin" --log-format text
  wait_http "http://127.0.0.1:$admin/healthz"
}

nginx_proxy() { # NAME PORT UPSTREAM-PORT...
  local name=$1 port=$2; shift 2
  local dir=$work/$name servers=""
  mkdir -p "$dir/tmp"
  for upstream in "$@"; do servers+="    server 127.0.0.1:$upstream;"$'\n'; done
  cat >"$dir/nginx.conf" <<CONF
daemon off;
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  upstream engines {
$servers    keepalive 128;
  }
  server {
    listen 127.0.0.1:$port;
    location / {
      proxy_pass http://engines;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 300s;
    }
  }
}
CONF
  start "$name" /usr/sbin/nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
  sleep 0.3
}

body=$work/body.json
printf '{"model":"bench","messages":[{"role":"user","content":"benchmark the data path"}],"max_tokens":16}' >"$body"

# hey_run LABEL URL HEY-FLAGS... -> one figures row in $work/figures
hey_run() {
  local label=$1 url=$2; shift 2
  local out=$work/hey-${label// /_}.txt
  hey -z "${seconds}s" "$@" -m POST -T application/json -D "$body" "$url/v1/chat/completions" >"$out" 2>&1
  awk -v label="$label" '
    /Requests\/sec:/ {rps=$2}
    /50% in/ {p50=$3*1000}
    /99% in/ {p99=$3*1000}
    /^[ \t]*\[[0-9]+\]/ {codes=codes $1 "x" $2 " "}
    END {printf "%-34s %10.0f %10.2f %10.2f   %s\n", label, rps, p50, p99, codes}' "$out" | tee -a "$work/figures"
}

header() { printf '\n%s\n%-34s %10s %10s %10s   %s\n' "$1" "run" "req/s" "p50 ms" "p99 ms" "status codes" | tee -a "$work/figures"; }

# ---- 1. overhead ----------------------------------------------------------
e0=$(free_port); g0=$(free_port); g0r=$(free_port); n0=$(free_port)
engine engine0 "$e0" --tokens 16
gateway gateway0 "$g0" "$g0r" overhead
reader reader0 "$g0r" overhead "$e0" 64
wait_pulling "$g0" overhead 1
nginx_proxy nginx0 "$n0" "$e0"
header "1. overhead: one test engine, no TTFT or token delay, hey -c 32 for ${seconds}s each"
hey_run "direct to engine" "http://127.0.0.1:$e0" -c 32
hey_run "gateway + reader" "http://127.0.0.1:$g0" -c 32
hey_run "nginx proxy_pass (keepalive)" "http://127.0.0.1:$n0" -c 32
awk '/^gateway \+ reader/ {g=$4} /^nginx proxy_pass/ {n=$4}
     END {if (n > 0) printf "ratio gateway/nginx req/s: %.2f\n", g / n}' "$work/figures" | tee -a "$work/figures"

# ---- 2. one slow replica: pull vs round-robin at ~80% of capacity ----------
# Each engine runs 4 requests at once (queues the rest, like vLLM); 16 tokens
# at 10 ms (fast) or 30 ms (slow): capacity 25 + 25 + 8.3 = 58 req/s.
slow_ports=()
for name in fast1 fast2 slow; do
  port=$(free_port); slow_ports+=("$port")
  delay=10; [ "$name" = slow ] && delay=30
  engine "$name" "$port" --tokens 16 --token-delay-ms "$delay" --max-concurrency 4
done
g1=$(free_port); g1r=$(free_port); n1=$(free_port)
gateway gateway1 "$g1" "$g1r" mixed
for i in 0 1 2; do reader "reader-mixed$i" "$g1r" mixed "${slow_ports[$i]}" 4; done
wait_pulling "$g1" mixed 3
nginx_proxy nginx1 "$n1" "${slow_ports[@]}"
rate=46 # ~80% of 58 req/s: 46 workers at 1 req/s each
header "2. one replica 3x slower; fixed load ~${rate} req/s (~80% of 58 req/s capacity) for ${seconds}s"
hey_run "pull (gateway + 3 readers)" "http://127.0.0.1:$g1" -c "$rate" -q 1
hey_run "round-robin (nginx, 3 servers)" "http://127.0.0.1:$n1" -c "$rate" -q 1

# ---- 3. streaming throughput -------------------------------------------------
printf '\n3. streaming: one answer of 20000 tokens, no token delay\n' | tee -a "$work/figures"
"$venv_bin/python" - "http://127.0.0.1:$e0" "http://127.0.0.1:$g0" <<'PY' | tee -a "$work/figures"
import sys, time
import httpx2 as httpx
body = {"model": "bench", "stream": True, "max_tokens": 20000,
        "messages": [{"role": "user", "content": "stream"}]}
for label, base in (("direct to engine", sys.argv[1]), ("gateway + reader", sys.argv[2])):
    best = 0.0
    for _ in range(3):
        tokens, start = 0, time.perf_counter()
        with httpx.stream("POST", base + "/v1/chat/completions", json=body, timeout=120) as r:
            for line in r.iter_lines():
                if line.startswith("data: {") and '"content":"' in line and '"content":""' not in line:
                    tokens += 1
        best = max(best, tokens / (time.perf_counter() - start))
    print(f"{label:<34} {best:10.0f} tokens/s  ({tokens} tokens, best of 3)")
PY

printf '\n==== figures ====\n'
cat "$work/figures"
