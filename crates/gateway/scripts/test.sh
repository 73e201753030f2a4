#!/usr/bin/env bash
# Tests of the data-path core: gateway and reader unit tests, handler tests
# (oneshot) and the in-process end-to-end test over loopback sockets.
# Needs only cargo; everything else (the tiny engine) is built by the tests.
set -euo pipefail
cd "$(dirname "$0")/../../.."
timeout 1800 cargo test -p flightdeck-gateway -p flightdeck-reader
