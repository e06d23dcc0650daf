#!/usr/bin/env bash
# scripts/run_obs.sh MAJOR [OBS arguments...]: runs OBS Studio of that major and exits with its status.
# scripts/run_obs.sh --build MAJOR: only builds (or checks) that major's root filesystem.
#
#   29  this machine's own OBS (Debian 12's obs-studio).
#   30  Debian 13 (trixie)'s obs-studio, Python 3.13;  32  Debian unstable (sid)'s, Python 3.14.
#
# 30 and 32 run from a root filesystem that debootstrap builds from Debian's packages the first
# time (several minutes) and that is cached in ~/.cache/privastream/obs-root-MAJOR, like the
# mediasoup worker.  The cache is found from the user's passwd entry, not $HOME, because callers
# (privastream_testkit/obs.py) run OBS with a throw-away HOME.
#
# Inside, OBS sees the host's /dev (so /dev/shm: a server outside serves OBS inside), /sys,
# /proc, /tmp (the X11 sockets, temporary HOMEs and media) and, at their own paths, this
# repository, $HOME and $XDG_RUNTIME_DIR (where the server's state file is).  The environment,
# DISPLAY and HOME included, passes through.  Every mount lives in a private mount namespace
# that ends with OBS, and each step is an exec, so OBS keeps this script's pid (the harness
# finds OBS's window by that pid) and its exit status is this script's.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
MIRROR=${PRIVASTREAM_DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${PRIVASTREAM_CACHE:-$(getent passwd "$(id -u)" | cut -d: -f6)/.cache/privastream}
# What OBS needs inside the root: OBS, Mesa's software OpenGL, the plugin's dependencies for
# that root's Python (numpy and websockets from Debian), and libobs' headers, against which
# tests/test_obs_abi.py checks the ctypes layer.
ROOT_PACKAGES=(obs-studio obs-plugins libgl1 libgl1-mesa-dri libegl-mesa0 python3-numpy python3-websockets libobs-dev)

die() { echo "run_obs.sh: $*" >&2; exit 2; }

suite_of() {
  case "$1" in
    30) echo trixie ;;
    32) echo sid ;;
    *) return 1 ;;
  esac
}

# sudo -E: DISPLAY, HOME and the rest of the environment must reach OBS.
if [ "$(id -u)" = 0 ]; then AS_ROOT=(); else AS_ROOT=(sudo -E); fi
as_root() { "${AS_ROOT[@]}" "$@"; }

# The command line that runs "$@" chrooted into $1 with the host's /dev, /proc, /sys and /tmp
# bound in, and each directory of BIND_DIRS at its own path, as the array IN_ROOT.  Nothing is
# mounted outside the private namespace, so nothing stays mounted when the command ends,
# however it ends.
in_root_command() {
  local root=$1; shift
  # shellcheck disable=SC2016  # expanded by the inner shell
  local script='
    root=$1; shift
    for d in /dev /proc /sys /tmp; do mount --rbind "$d" "$root$d"; done
    for d in $BIND_DIRS; do
      case "$d" in /tmp/*) continue ;; esac   # already there through /tmp
      mkdir -p "$root$d" && mount --rbind "$d" "$root$d"
    done
    exec chroot "$root" "$@"'
  IN_ROOT=("${AS_ROOT[@]}" env BIND_DIRS="${BIND_DIRS:-}" unshare --mount --propagation private --
           /bin/sh -c "$script" in_root "$root" "$@")
}

# Builds $CACHE/obs-root-MAJOR: debootstrap (minbase) once, into a temporary name renamed when
# complete, then apt installs ROOT_PACKAGES into it.  Its stamp .privastream-root lists the
# packages asked for, then the versions installed; a root whose first line differs gets the
# packages installed again, so adding one to ROOT_PACKAGES updates cached roots in place.
# All of it under a lock: two callers never build at once.
# Check-Valid-Until=false: CI mirrors can serve a frozen snapshot whose sid Release file has
# expired; apt still verifies every signature.
build_root() {
  local major=$1 suite root want
  suite=$(suite_of "$major") || die "no root filesystem for OBS $major (29 is this machine's, 30 and 32 are built)"
  root=$CACHE/obs-root-$major
  want="packages: ${ROOT_PACKAGES[*]}"
  root_current() { [ "$(head -n1 "$root/.privastream-root" 2>/dev/null)" = "$want" ]; }
  root_current && return 0
  command -v debootstrap >/dev/null || die "debootstrap is missing (scripts/setup.sh installs it)"
  mkdir -p "$CACHE"
  exec 9>"$CACHE/obs-root-$major.lock"
  flock 9
  root_current && return 0
  local started=$SECONDS
  echo "run_obs.sh: building the OBS $major root filesystem (Debian $suite) in $root" >&2
  if [ ! -d "$root" ]; then
    as_root rm -rf "$root.partial"
    as_root debootstrap --variant=minbase "$suite" "$root.partial" "$MIRROR" >&2
    as_root mv "$root.partial" "$root"
  fi
  BIND_DIRS='' in_root_command "$root" env DEBIAN_FRONTEND=noninteractive \
    sh -c "apt-get -o Acquire::Check-Valid-Until=false update -q &&
           apt-get install -y -q --no-install-recommends ${ROOT_PACKAGES[*]} && apt-get clean"
  "${IN_ROOT[@]}" >&2
  local version
  version=$(as_root chroot "$root" dpkg-query -W -f='${Version}' obs-studio)
  [ "${version%%.*}" = "$major" ] || die "Debian $suite now ships OBS $version, not $major: update suite_of in $0"
  { echo "$want"
    as_root chroot "$root" dpkg-query -W -f='${Package} ${Version}\n' obs-studio libobs-dev python3 python3-numpy python3-websockets
  } | as_root tee "$root/.privastream-root" >/dev/null
  echo "run_obs.sh: OBS $major root ready in $((SECONDS - started)) s: $(tail -n +2 "$root/.privastream-root" | tr '\n' ' ')" >&2
}

[ $# -ge 1 ] || die "usage: scripts/run_obs.sh MAJOR [OBS arguments...] | --build MAJOR"
if [ "$1" = --build ]; then
  [ $# = 2 ] || die "usage: scripts/run_obs.sh --build MAJOR"
  build_root "$2"
  echo "OBS $2 root: $(tail -n +2 "$CACHE/obs-root-$2/.privastream-root" | tr '\n' ' ')"
  exit 0
fi
major=$1; shift
case "$major" in
  29)
    version=$(dpkg-query -W -f='${Version}' obs-studio 2>/dev/null) || die "obs-studio is not installed (scripts/setup.sh)"
    [ "${version%%.*}" = 29 ] || die "this machine's OBS is $version, not 29"
    exec obs "$@" ;;
  *)
    build_root "$major"
    BIND_DIRS="$REPO $HOME ${XDG_RUNTIME_DIR:-}" in_root_command "$CACHE/obs-root-$major" obs "$@"
    exec "${IN_ROOT[@]}" ;;
esac
