# shellcheck shell=bash
# Starting and stopping the cluster's processes. Each process is recorded in
# the run dir as NAME.pid, NAME.exe and NAME.start (its start time in clock
# ticks since boot); a process is "ours" only while all three still match, so
# stop never signals a PID the kernel has since given to someone else, and
# nothing is ever killed by name. Sourced by cluster.sh; uses RUN_DIR, die.

# proc_start_time PID: field 22 of /proc/PID/stat (after the "(comm)" field,
# which may hold spaces).
proc_start_time() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  echo "$stat" | awk '{print $20}'
}

# spawn NAME EXE ARGS...: run EXE in its own session (so a Ctrl-C meant for
# the caller does not reach it), stdin from /dev/null, output to NAME.log, and
# no inherited descriptors beyond 0-2 (an inherited lock or pipe would keep a
# flock held or a caller's $(...) waiting for as long as the process lives).
spawn() {
  local name=$1 exe; shift
  exe=$(command -v "$1") || die "$1: not found"
  exe=$(readlink -f "$exe")
  rm -f "$RUN_DIR/$name.pid" "$RUN_DIR/$name.start"
  echo "$exe" >"$RUN_DIR/$name.exe"
  # shellcheck disable=SC2016
  setsid bash -c '
    fds=$(ls /proc/$$/fd)
    for fd in $fds; do
      if [ "$fd" -gt 2 ] && [ -e "/proc/$$/fd/$fd" ]; then eval "exec $fd>&-"; fi
    done
    echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' "$RUN_DIR/$name.pid" "$exe" "${@:2}" \
    </dev/null >"$RUN_DIR/$name.log" 2>&1 &
  local _ pid
  for _ in $(seq 1 200); do
    if [ -s "$RUN_DIR/$name.pid" ]; then
      pid=$(cat "$RUN_DIR/$name.pid")
      # The pid file is written before exec; wait until exec has happened.
      if [ "$(readlink -f "/proc/$pid/exe" 2>/dev/null)" = "$exe" ]; then
        proc_start_time "$pid" >"$RUN_DIR/$name.start" && return 0
      fi
      # Already exited (a port taken, a bad flag): the caller's wait_http
      # reads the log and tells which.
      if gone "$pid" ""; then return 0; fi
    fi
    sleep 0.05
  done
  tail -n 20 "$RUN_DIR/$name.log" >&2 2>/dev/null || true
  die "could not start $name"
}

# alive NAME: the recorded process still runs, and is still the one we started.
alive() {
  local name=$1 pid
  [ -s "$RUN_DIR/$name.pid" ] && [ -s "$RUN_DIR/$name.start" ] || return 1
  pid=$(cat "$RUN_DIR/$name.pid")
  [ -n "$pid" ] && [ -e "/proc/$pid" ] || return 1
  [ "$(readlink -f "/proc/$pid/exe" 2>/dev/null)" = "$(cat "$RUN_DIR/$name.exe" 2>/dev/null)" ] || return 1
  [ "$(proc_start_time "$pid")" = "$(cat "$RUN_DIR/$name.start")" ]
}

# gone PID [START]: the process has fully exited (or is a zombie), or PID is
# now another process (START given and different). Not merely
# "exe unreadable": that happens early in exit, before its sockets and files
# are closed, and stop must hand back free ports and an unlocked data dir.
gone() {
  local stat fields
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }
  read -r -a fields <<<"$stat"   # fields[0]: state, fields[19]: start time
  [ "${fields[0]}" = Z ] || { [ -n "$2" ] && [ "${fields[19]}" != "$2" ]; }
}

# stop_process NAME: TERM, up to 10 s for a clean exit, then KILL.
stop_process() {
  local name=$1 pid start _
  if alive "$name"; then
    pid=$(cat "$RUN_DIR/$name.pid"); start=$(cat "$RUN_DIR/$name.start")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do gone "$pid" "$start" && break; sleep 0.1; done
    if ! gone "$pid" "$start"; then
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do gone "$pid" "$start" && break; sleep 0.1; done
    fi
  fi
  rm -f "$RUN_DIR/$name.pid" "$RUN_DIR/$name.start"
}

# group_running PGID: some process of the group is alive and not a zombie
# (kill -0 also counts zombies, which nobody may reap for a while).
group_running() {
  awk -v pgid="$1" '{
      rest = $0; while ((i = index(rest, ") ")) > 0) rest = substr(rest, i + 2)
      split(rest, f, " "); if (f[3] == pgid && f[1] != "Z") found = 1
    } END { exit !found }' /proc/[0-9]*/stat 2>/dev/null
}

# rss_kib NAME: resident memory of a running process, for status and timings.
rss_kib() {
  alive "$1" || { echo 0; return; }
  awk '/^VmRSS:/ {print $2}' "/proc/$(cat "$RUN_DIR/$1.pid")/status"
}

# wait_http NAME URL PATTERN [CURL ARGS...]: poll URL until its body matches
# PATTERN (grep -E), failing early if process NAME exits. Returns 2 when the
# process died because its port was taken (the caller retries on new ports).
wait_http() {
  local name=$1 url=$2 pattern=$3; shift 3
  local deadline=$(( $(date +%s) + TIMEOUT ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    if ! alive "$name"; then
      if grep -q 'address already in use' "$RUN_DIR/$name.log" 2>/dev/null; then return 2; fi
      tail -n 20 "$RUN_DIR/$name.log" >&2
      die "$name exited during start-up (log: $RUN_DIR/$name.log)"
    fi
    if curl -s --max-time 2 "$@" "$url" 2>/dev/null | grep -Eq "$pattern"; then return 0; fi
    sleep 0.1
  done
  tail -n 20 "$RUN_DIR/$name.log" >&2
  die "$name not ready after ${TIMEOUT}s (log: $RUN_DIR/$name.log)"
}

# free_port: a loopback port nobody listens on right now. Another process may
# take it before we bind it; start() then retries with new ports.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
