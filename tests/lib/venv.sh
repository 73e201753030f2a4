#!/usr/bin/env bash
# Usage: tests/lib/venv.sh REQUIREMENTS_FILE...
# Makes (once) the project's Python venv under ~/.cache/flightdeck, installs each
# requirements file into it (again only when the file changes), and prints the
# venv's bin directory. Safe to call from several scripts at once (flock).
set -euo pipefail
cache=${FLIGHTDECK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flightdeck}
venv=$cache/venv
mkdir -p "$cache"
exec 9>"$cache/venv.lock"
flock 9
if [ ! -x "$venv/bin/python" ]; then
  echo "flightdeck: creating Python venv $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check --upgrade pip >&2
fi
for req in "$@"; do
  stamp=$venv/.installed-$(sha256sum "$req" | cut -c1-16)
  [ -e "$stamp" ] && continue
  echo "flightdeck: pip install -r $req (first run only; cached in $venv)" >&2
  CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" >&2
  touch "$stamp"
done
echo "$venv/bin"
