#!/usr/bin/env bash
# Sets up the SFU, idempotently: npm packages, the mediasoup worker, the viewer bundle.
# Called by scripts/setup.sh after the .venv exists (meson and ninja come from it).
#
# Why not a plain `npm install`: mediasoup's postinstall downloads a prebuilt worker
# from GitHub and falls back to a meson build whose subprojects download too; neither
# can reach the network here. So packages install with --ignore-scripts and the worker
# is built against Debian 12's libraries (see worker-subprojects/README.md), once per
# machine: the binary is cached outside the clone and reused by every later setup.
set -euo pipefail
cd "$(dirname "$0")"
SFU=$PWD
ROOT=$(cd .. && pwd)
export PATH="$ROOT/.venv/bin:$PATH"
MEDIASOUP_VERSION=3.12.16
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/privastream/mediasoup-worker-$MEDIASOUP_VERSION"
say() { printf -- '--> %s\n' "$*"; }

# 1. npm packages: reinstall when package-lock.json changed since the last install.
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat node_modules/.privastream-lock.sha256 2>/dev/null)" != "$lock_sum" ]; then
  say "npm ci --ignore-scripts"
  npm ci --ignore-scripts --no-audit --no-fund
  echo "$lock_sum" > node_modules/.privastream-lock.sha256
else
  say "npm packages up to date"
fi
installed=$(node -p "require('mediasoup/package.json').version")
if [ "$installed" != "$MEDIASOUP_VERSION" ]; then
  echo "error: node_modules has mediasoup $installed, this setup builds $MEDIASOUP_VERSION" >&2
  exit 1
fi

# 2. mediasoup worker: MEDIASOUP_WORKER_BIN wins, then the cache, else build (6-9 min).
if [ -n "${MEDIASOUP_WORKER_BIN:-}" ]; then
  [ -x "$MEDIASOUP_WORKER_BIN" ] || { echo "error: MEDIASOUP_WORKER_BIN=$MEDIASOUP_WORKER_BIN is not an executable" >&2; exit 1; }
  say "mediasoup worker: using MEDIASOUP_WORKER_BIN=$MEDIASOUP_WORKER_BIN"
elif [ -x "$CACHE_DIR/mediasoup-worker" ]; then
  say "mediasoup worker: cached at $CACHE_DIR/mediasoup-worker"
else
  say "mediasoup worker: building $MEDIASOUP_VERSION against Debian's libraries (6-9 minutes on 2 cores)"
  command -v meson >/dev/null && command -v ninja >/dev/null || {
    echo "error: meson/ninja not found; run scripts/setup.sh (it installs them into .venv)" >&2; exit 1; }
  worker=node_modules/mediasoup/worker
  rm -f "$worker"/subprojects/*.wrap
  cp -r worker-subprojects/*/ "$worker/subprojects/"
  build_out="$CACHE_DIR/build"
  mkdir -p "$build_out"
  # PIP_DIR points at the venv so that the Makefile finds meson/ninja there and
  # does not pip-install its own copies; the build itself stays outside the clone.
  env -u MEDIASOUP_WORKER_BIN make -C "$worker" mediasoup-worker \
    PIP_DIR="$ROOT/.venv" MESON="$(command -v meson)" \
    MEDIASOUP_OUT_DIR="$build_out" MESON_ARGS="--wrap-mode=nodownload"
  install -m 755 "$build_out/Release/mediasoup-worker" "$CACHE_DIR/mediasoup-worker.tmp"
  mv "$CACHE_DIR/mediasoup-worker.tmp" "$CACHE_DIR/mediasoup-worker"
  rm -rf "$build_out"
  say "mediasoup worker: built $CACHE_DIR/mediasoup-worker"
fi

# 3. Viewer bundle (mediasoup-client + our page script), served from public/: no CDN.
if [ ! -s public/bundle.js ] || [ -n "$(find public/viewer.js package-lock.json -newer public/bundle.js)" ]; then
  say "bundling the viewer page (esbuild)"
  npm run --silent bundle
else
  say "viewer bundle up to date"
fi
say "SFU ready: npm --prefix sfu start"
