# shellcheck shell=bash
# The TAP-like check runner of the smoke tests (smoke-in-cluster.sh,
# smoke-node-in-cluster.sh): `check NAME CMD...` runs CMD, prints
# "ok - NAME (N ms)" or "not ok - NAME" with CMD's output, and counts both in
# $passed and $failed. FLIGHTDECK_SMOKE_VERBOSE=1 also prints what passing
# checks saw.
# shellcheck disable=SC2034 # passed/failed are read by the sourcing script
passed=0
failed=0

k() { kubectl --request-timeout=30s "$@"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# check NAME CMD...: run one check, print its outcome and, on failure, its output.
check() {
  local name=$1 out t0; shift
  t0=$(now_ms)
  if out=$("$@" 2>&1); then
    passed=$((passed + 1)); echo "ok - $name ($(( $(now_ms) - t0 )) ms)"
    if [ -n "${FLIGHTDECK_SMOKE_VERBOSE:-}" ]; then printf '%s\n' "$out" | sed 's/^/    /'; fi
  else
    failed=$((failed + 1)); echo "not ok - $name"; printf '%s\n' "$out" | sed 's/^/    /'
  fi
}
