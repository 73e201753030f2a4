#!/usr/bin/env bash
# Builds the node images (tests/images/build.sh, cached) and imports them into
# the running node of tests/control-plane/cluster.sh (the cluster named by
# FLIGHTDECK_CLUSTER_NAME, as cluster.sh picks it). Prints every image
# reference loaded, one per line, on stdout; progress goes to stderr.
#
#   tests/images/load.sh        (make node-images runs this)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
start=$(date +%s)
mapfile -t tars < <("$root/tests/images/build.sh")
[ ${#tars[@]} -gt 0 ] || { echo "images: build.sh printed no archive" >&2; exit 1; }
"$root/tests/control-plane/cluster.sh" import "${tars[@]}"
echo "images: ${#tars[@]} images built and loaded in $(( $(date +%s) - start ))s" >&2
