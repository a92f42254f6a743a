#!/usr/bin/env bash
# Installs what the build and the test suite need beyond Rust: the C build tools librdkafka needs,
# headless Chromium with its driver (Debian packages), and two Python environments: Socket.IO
# clients (protocol 5, and protocol 4 as Socket.IO 2.x pages spoke it) and kafka-python for the
# tutorial's producer and consumer. Idempotent; quick when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."
venvs="${WEIR_VENV_DIR:-$HOME/.cache/weir}"

# Debian packages: the C toolchain, pkg-config, zlib and OpenSSL headers that rdkafka's bundled
# librdkafka builds with (TLS and SCRAM) — the C compiler also builds the C example plugin — the browser for the dashboard tests, and the openssl
# command line that makes the TLS tests' certificates.
packages=(build-essential pkg-config zlib1g-dev libssl-dev openssl chromium chromium-driver
          fonts-noto-cjk postgresql)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
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
