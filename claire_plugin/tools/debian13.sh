#!/bin/bash
# `make test-debian13`: run `make test` (unchanged) inside a Debian 13 (trixie) root made by debootstrap
# under build/debian13/root: QGIS 3.40 LTR, Python 3.13, GDAL 3.10, NumPy 2. A second run reuses the root,
# its Debian packages and its .venv, and copies the current source tree in again.
# Usage: claire_plugin/tools/debian13.sh [MAKE TARGET, default: test]   (as root; TORCH=cpu|cuda passes on)
set -euo pipefail

SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$SRC/build}
CHROOT=$BUILD/debian13/root
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
TARGET=${1:-test}
LOG=$BUILD/debian13/$TARGET.log

if [ "$(id -u)" -ne 0 ]; then
  echo "make test-debian13 needs root (debootstrap, chroot, mount). Fix: run it with sudo." >&2
  exit 2
fi
if ! command -v debootstrap >/dev/null; then
  echo "[debian13] Installing debootstrap from Debian's packages"
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap
fi
mkdir -p "$BUILD/debian13"
if [ ! -e "$CHROOT/.claire-debootstrap-ok" ]; then
  echo "[debian13] debootstrap trixie into $CHROOT (a minimal system: some 80 packages, a few minutes)"
  nice -n 10 debootstrap --variant=minbase --include=make,ca-certificates trixie "$CHROOT" "$MIRROR"
  touch "$CHROOT/.claire-debootstrap-ok"
fi

unmount_all() {
  for sub in dev sys proc; do
    if mountpoint -q "$CHROOT/$sub"; then umount -R "$CHROOT/$sub" || umount -lR "$CHROOT/$sub"; fi
  done
}
trap unmount_all EXIT
mountpoint -q "$CHROOT/proc" || mount -t proc proc "$CHROOT/proc"
for sub in sys dev; do
  mountpoint -q "$CHROOT/$sub" || { mount --rbind "/$sub" "$CHROOT/$sub" && mount --make-rslave "$CHROOT/$sub"; }
done
cp -L /etc/resolv.conf "$CHROOT/etc/resolv.conf"
# Certificate authorities the host added locally (e.g. a proxy's): pip inside must trust them too.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  mkdir -p "$CHROOT/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$CHROOT/usr/local/share/ca-certificates/"
  chroot "$CHROOT" update-ca-certificates >/dev/null
fi

echo "[debian13] Copying the source tree to $CHROOT/src (its .venv and build/ are kept between runs)"
mkdir -p "$CHROOT/src"
find "$CHROOT/src" -mindepth 1 -maxdepth 1 ! -name .venv ! -name build -exec rm -rf {} +
tar -C "$SRC" --exclude=./.venv --exclude=./build --exclude=./.git --exclude=__pycache__ \
  --exclude=.hypothesis -cf - . | tar -C "$CHROOT/src" -xf -

echo "[debian13] make $TARGET inside Debian 13 (log: $LOG)"
set +e
chroot "$CHROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb TORCH="${TORCH:-auto}" \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  bash -c "cd /src && make $TARGET" 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}
set -e
versions=$(chroot "$CHROOT" /src/.venv/bin/python -c 'import sys, numpy, torch; from osgeo import gdal; from qgis.core import Qgis; print("Python %d.%d.%d" % sys.version_info[:3], "QGIS", Qgis.QGIS_VERSION, "GDAL", gdal.__version__, "NumPy", numpy.__version__, "torch", torch.__version__)' 2>/dev/null || true)
echo "[debian13] ${versions:-versions unknown}"
if [ "$TARGET" = test ]; then
  echo "[debian13] result: $(grep -E '^=+ .*(passed|failed|error).* =+$' "$LOG" | tail -1 || echo 'no pytest summary') (exit $status)"
else
  echo "[debian13] make $TARGET: exit $status"
fi
exit "$status"
