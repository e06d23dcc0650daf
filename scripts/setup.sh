#!/usr/bin/env bash
# Sets up whatever is missing, idempotently: Debian packages, the .venv, the model
# files, the OBS 30 and 32 root filesystems, the SFU (npm packages, mediasoup worker,
# viewer bundle).  Safe to re-run; each step skips itself when its work is already done.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

APT_PACKAGES=(
  python3 python3-venv python3-pip python3-numpy
  ffmpeg espeak-ng sox alsa-utils fonts-dejavu-core
  obs-studio libobs-dev xvfb xauth libgl1-mesa-dri gdb debootstrap
  chromium chromium-driver iproute2 procps systemd
  nodejs npm
  build-essential pkg-config libssl-dev libuv1-dev libsrtp2-dev libusrsctp-dev libabsl-dev nlohmann-json3-dev
)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

step "Debian packages"
missing=()
for p in "${APT_PACKAGES[@]}"; do
  # Node may come from elsewhere (nodesource, nvm): only ask apt for it when there is none.
  if [ "$p" = nodejs ] && command -v node >/dev/null; then continue; fi
  if [ "$p" = npm ] && command -v npm >/dev/null; then continue; fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "all present"
fi

step "Python virtual environment (.venv)"
# OBS embeds the system Python 3.11, and its script adds this venv's site-packages:
# the venv must be built from that same interpreter.
if [ ! -x .venv/bin/python ]; then
  /usr/bin/python3.11 -m venv .venv
fi
# requirements.txt installs this package (editable) with its extras; the pins are in pyproject.toml.
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat .venv/.requirements.sha256 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --disable-pip-version-check --progress-bar on -r requirements.txt
  echo "$want" > .venv/.requirements.sha256
else
  echo "requirements already installed"
fi

step "Model files"
.venv/bin/python -m inference_server fetch-models

step "OBS 30 and 32 root filesystems (scripts/run_obs.sh)"
# Debian's OBS 30 (trixie) and 32 (unstable), each in a debootstrap root cached in
# ~/.cache/privastream/ and built once (about 1-3 min each with a near mirror).
# A root that cannot be built (mirror down, sid moved on to another major) does not stop the
# rest of the set-up: the OBS tests of that major then fail with run_obs.sh's reason.
for major in 30 32; do
  scripts/run_obs.sh --build "$major" || echo "WARNING: no OBS $major root filesystem; its OBS tests will fail" >&2
done

if [ -x sfu/setup.sh ]; then
  step "SFU (npm packages, mediasoup worker, viewer bundle)"
  sfu/setup.sh
fi
step "Setup complete"
