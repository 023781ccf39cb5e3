#!/bin/sh
# The GPU check with this machine's own python3 and torch, without `make`'s set-up (a GPU machine that cannot
# install packages): the forwards and the training need torch, numpy and safetensors; the end-to-end stage runs
# only where GDAL's and rasterio's Python modules import. Usage: sh claire_plugin/tools/gpu_check.sh [OUT_DIR]
set -e
root=$(cd "$(dirname "$0")/../.." && pwd)
site=$(mktemp -d)
ln -s "$root" "$site/claire"
out=${1:-$root/build}
PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" ${PYTHON:-python3} -m claire.claire_plugin.tools.gpu_check --out "$out"
rm -rf "$site"
