#!/usr/bin/env bash
# Usage: tests/lib/venv.sh REQUIREMENTS_FILE...
# Makes (once) the project's Python venv under ~/.cache/flightdeck, installs each
# requirements file into it (again only when the file changes), and prints the
# venv's bin directory. Safe to call from several scripts at once (flock).
# On a fresh Debian machine it installs python3 and python3-venv with apt first.
set -euo pipefail
cache=${FLIGHTDECK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flightdeck}
venv=$cache/venv
mkdir -p "$cache"

stamp_of() { echo "$venv/.installed-$(sha256sum "$1" | cut -c1-16)"; }

# Fast path without the lock: everything asked for is installed already, so a
# caller never waits behind another script's long install (an sdist build).
all_installed=1
for req in "$@"; do [ -e "$(stamp_of "$req")" ] || all_installed=0; done
if [ "$all_installed" = 1 ] && [ -x "$venv/bin/python" ] && [ -x "$venv/bin/pip" ]; then
  echo "$venv/bin"
  exit 0
fi

exec 9>"$cache/venv.lock"
flock 9

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else "$@"; fi
}

# Debian's python3 lacks the venv module (ensurepip) until python3-venv is in.
apt_python() {
  echo "flightdeck: installing python3 and python3-venv with apt" >&2
  local install=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3 python3-venv)
  as_root "${install[@]}" >&2 || { as_root apt-get update -q >&2 || true; as_root "${install[@]}" >&2; }
}

make_venv() {
  rm -rf "$venv"
  python3 -m venv "$venv" >&2 && [ -x "$venv/bin/pip" ]
}

# A venv without pip is a half-made one (venv module present, ensurepip not).
if [ ! -x "$venv/bin/python" ] || [ ! -x "$venv/bin/pip" ]; then
  echo "flightdeck: creating Python venv $venv" >&2
  command -v python3 >/dev/null 2>&1 || apt_python
  make_venv || { apt_python && make_venv; } || { echo "flightdeck: cannot create $venv" >&2; exit 1; }
  "$venv/bin/pip" install -q --disable-pip-version-check --upgrade pip >&2
fi
for req in "$@"; do
  stamp=$(stamp_of "$req")
  [ -e "$stamp" ] && continue
  echo "flightdeck: pip install -r $req (first run only; cached in $venv)" >&2
  CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" >&2
  touch "$stamp"
done
echo "$venv/bin"
