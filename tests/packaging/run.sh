#!/usr/bin/env bash
# tests/packaging/run.sh - checks everything Flightdeck ships besides binaries:
# helm charts (lint --strict, template with default and example values,
# schemas), kustomize config/, the OLM bundle and file-based catalog (drift,
# CSV vs config/, FBC rules, published entries immutable), every rendered
# object against the Kubernetes schemas and a real API server (server-side
# dry run), Dockerfiles (hadolint), and the operator, bundle and catalog
# images (buildah, skopeo, umoci). Installs what it needs (apt, PyPI) on a
# fresh machine. Exits non-zero when any check fails.
#
# Environment: CARGO_TARGET_DIR, FLIGHTDECK_BIN_DIR (see tests/lib/build.sh),
# PACKAGING_SKIP_IMAGES=1 and PACKAGING_SKIP_CLUSTER=1 to leave out the slow
# stages while iterating.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/tests/packaging
cd "$ROOT" || exit 1

passed=0
failed=0
failures=()
counts=$(mktemp)
work=$(mktemp -d)
cleanup() { rm -rf "$work" "$counts"; }
trap cleanup EXIT

# step NAME CMD...: one check run by this script.
step() {
  local name=$1
  shift
  if "$@"; then
    passed=$((passed + 1))
    echo "ok   $name"
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "FAIL $name"
  fi
}

# collect LABEL CMD...: runs a check.py stage (CMD) and adds its closing
# "packaging: N passed, N failed" counts to ours.
collect() {
  local label=$1 out line f
  shift
  out=$(mktemp)
  "$@" | tee "$out"
  line=$(grep -E '^packaging: [0-9]+ passed, [0-9]+ failed$' "$out" | tail -n1)
  rm -f "$out"
  if [ -z "$line" ]; then
    failed=$((failed + 1))
    failures+=("$label did not finish")
    return
  fi
  passed=$((passed + $(echo "$line" | sed -E 's/^packaging: ([0-9]+) passed.*/\1/')))
  f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed$/\1/')
  failed=$((failed + f))
  [ "$f" -eq 0 ] || failures+=("$label: $f failed")
}

install_apt_tools() {
  local missing=()
  for tool in buildah skopeo umoci; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "packaging: apt-get install ${missing[*]}" >&2
  local sudo=
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
}

step "tools: buildah, skopeo, umoci (apt)" install_apt_tools
VENV=$("$ROOT/tests/lib/venv.sh" "$HERE/requirements.txt") || { echo "packaging: cannot install the Python tools" >&2; exit 1; }
export PATH=$VENV:$PATH
# The project's one release build (static: the operator image is FROM scratch).
build() { BIN_DIR=$("$ROOT/tests/lib/build.sh"); }
step "release build (tests/lib/build.sh)" build
if [ -z "${BIN_DIR:-}" ]; then
  echo "failed: release build (the other checks need its binaries)"
  echo "packaging: $passed passed, $failed failed"
  exit 1
fi
step "hadolint Dockerfile Dockerfile.catalog bundle.Dockerfile" \
  "$VENV/hadolint" Dockerfile Dockerfile.catalog bundle.Dockerfile

collect "static checks" "$VENV/python" "$HERE/check.py" static \
  --flightdeck "$BIN_DIR/flightdeck" --yamllint "$VENV/yamllint"

if [ "${PACKAGING_SKIP_CLUSTER:-}" != 1 ]; then
  # Bounded: a hung API server must not hang CI.
  collect "API server checks" "$ROOT/tests/control-plane/with-cluster.sh" --timeout 900 \
    "$VENV/python" "$HERE/check.py" cluster
fi

if [ "${PACKAGING_SKIP_IMAGES:-}" != 1 ]; then
  collect "image checks" "$VENV/python" "$HERE/check.py" images --workdir "$work" \
    --operator-binary "$BIN_DIR/flightdeck-operator"
fi

for f in "${failures[@]}"; do echo "failed: $f"; done
echo "packaging: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
