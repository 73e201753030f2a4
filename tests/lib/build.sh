#!/usr/bin/env bash
# The one release build of Flightdeck's binaries: the images (`make dist`),
# `make up`, the data-path, CRD, packaging, README and demo tests and the
# benchmarks all run what this builds.
#
# Usage:
#   tests/lib/build.sh                  build (a no-op when up to date) and print
#                                       the directory holding the binaries:
#       $CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/
#         flightdeck-operator flightdeck-gateway flightdeck-reader flightdeck flightdeck-test-engine
#   tests/lib/build.sh cargo CMD ARGS...
#                                       cargo CMD with this build's flags and target
#                                       (e.g. `cargo bench`), so it reuses the
#                                       dependencies this build compiled
#
# The binaries are static (crt-static on the gnu target gives static-pie
# executables): the images are FROM scratch, and the same files run on any
# Linux host. One set of flags for every release build keeps a second release
# build of the whole dependency tree out of CI (`cargo test` and clippy keep
# their debug builds). --target keeps build scripts and proc macros (host
# code) out of the static flags; --locked builds exactly Cargo.lock, as the
# Dockerfile's builder stage does.
#
# Environment: FLIGHTDECK_BIN_DIR (binaries built elsewhere: checked and
# printed, nothing is built), CARGO_TARGET_DIR, CARGO.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
binaries=(flightdeck-operator flightdeck-gateway flightdeck-reader flightdeck flightdeck-test-engine)
packages=(flightdeck-operator flightdeck-gateway flightdeck-reader flightdeck-cli flightdeck-test-engine)
target=x86_64-unknown-linux-gnu
export RUSTFLAGS='-C target-feature=+crt-static'
cargo=${CARGO:-cargo}
cd "$root"

if [ "${1:-}" = cargo ]; then
  [ $# -ge 2 ] || { echo "usage: tests/lib/build.sh cargo CMD [ARGS...]" >&2; exit 2; }
  command=$2
  shift 2
  exec "$cargo" "$command" --locked --target "$target" "$@"
fi
[ $# -eq 0 ] || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

if [ -n "${FLIGHTDECK_BIN_DIR:-}" ]; then
  bin_dir=$FLIGHTDECK_BIN_DIR
else
  case ${CARGO_TARGET_DIR:-} in
    "") bin_dir=$root/target/$target/release ;;
    /*) bin_dir=$CARGO_TARGET_DIR/$target/release ;;
    *) bin_dir=$root/$CARGO_TARGET_DIR/$target/release ;;
  esac
  selected=()
  for package in "${packages[@]}"; do selected+=(-p "$package"); done
  echo "flightdeck: release build of ${binaries[*]} (static, $target)" >&2
  started=$SECONDS
  "$cargo" build -q --release --locked --target "$target" "${selected[@]}" >&2
  if [ $((SECONDS - started)) -gt 5 ]; then
    echo "flightdeck: release build took $((SECONDS - started))s" >&2
  fi
fi

for binary in "${binaries[@]}"; do
  [ -x "$bin_dir/$binary" ] || { echo "flightdeck: $bin_dir/$binary is missing" >&2; exit 1; }
done
echo "$bin_dir"
