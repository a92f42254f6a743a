#!/usr/bin/env bash
# Installs what the test suite needs beyond Rust: headless Chromium with its driver (Debian
# packages) and two Python environments with Socket.IO clients (protocol 5, and protocol 4 as
# Socket.IO 2.x pages spoke it). Idempotent; quick when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."
venvs="${WEIR_VENV_DIR:-$HOME/.cache/weir}"

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver fonts-noto-cjk >/dev/null
fi

make_venv() { # name requirements-file
  local dir="$venvs/$1"
  if [ ! -x "$dir/bin/python" ] || ! cmp -s "$2" "$dir/requirements.txt"; then
    python3 -m venv "$dir"
    "$dir/bin/pip" install -q --disable-pip-version-check -r "$2"
    cp "$2" "$dir/requirements.txt"
  fi
}
make_venv venv-sio5 tests/python/requirements.txt
make_venv venv-sio2 tests/python/requirements-socketio2.txt
