# shellcheck shell=bash
# Shared helpers of tests/demo/run.sh and tests/demo/in-cluster.sh (sourced).
# Every step says what it is doing: a newcomer watches this output.

# Bold/red/green only on a terminal; CI logs stay plain text.
# shellcheck disable=SC2034 # green is used by run.sh
if [ -t 1 ]; then bold=$'\033[1m' red=$'\033[31m' green=$'\033[32m' plain=$'\033[0m'; else bold='' red='' green='' plain=''; fi
# step TEXT: a visible heading for one step.
step() { printf '\n%s==> %s%s\n' "$bold" "$*" "$plain"; }
# say TEXT: a detail line under the current step.
say() { printf '    %s\n' "$*"; }
# fail TEXT: print why and exit non-zero (the EXIT trap cleans up).
fail() { printf '%sdemo: FAILED: %s%s\n' "$red" "$*" "$plain" >&2; exit 1; }
# show CMD...: print a command, then run it (its output is the point).
show() { printf '    $ %s\n' "$*"; "$@"; }

# free_port: a loopback TCP port nobody listens on right now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_until SECONDS WHAT CMD...: run CMD every second until it succeeds;
# fail after SECONDS, naming WHAT.
wait_until() {
  local seconds=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + seconds))
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || fail "$what not reached within ${seconds}s"
    sleep 1
  done
}

# descendants PID: every live process below PID (children, grandchildren...).
descendants() {
  local child
  for child in $(pgrep -P "$1" 2>/dev/null); do
    echo "$child"
    descendants "$child"
  done
}
