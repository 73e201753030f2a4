#!/usr/bin/env bash
# Node scenarios (make test-node): a one-node Kubernetes (kubelet + containerd,
# tests/control-plane/cluster.sh start --node), the project's images built
# with buildah and imported into the node, the operator installed with
# `make deploy`, and stacks whose pods really run: the quickstart on the real
# llama.cpp engine image, a two-gateway stack of test engines rolled and
# force-deleted under load. Figures are printed at the end.
#
#   tests/node/run.sh [pytest args...]      e.g. -k quickstart, -x
#
# Environment: NODE_TEST_TIMEOUT (seconds for the cluster part, default 1800);
# FLIGHTDECK_NODE_FIGURES (append the printed figures to this file).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

"$ROOT/tests/lib/venv.sh" "$ROOT/tests/node/requirements.txt" >/dev/null
# Build every image before the cluster starts, so the cluster's time limit
# covers the scenarios only (the first build compiles llama-server).
echo "== building the node images (cached)"
tests/images/build.sh >/dev/null

exec tests/control-plane/with-cluster.sh --node --timeout "${NODE_TEST_TIMEOUT:-1800}" \
  tests/node/in-cluster.sh "$@"
