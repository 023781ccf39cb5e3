#!/bin/sh
# The GPU check with this machine's own python3 and torch, without `make`'s set-up (a GPU machine that cannot
# install packages): the forwards and the training need torch, numpy and safetensors; the end-to-end stage runs
# only where GDAL's and rasterio's Python modules import. Usage: sh claire_plugin/tools/gpu_check.sh [OUT_DIR]
# (PYTHON=... picks another interpreter).
root=$(cd "$(dirname "$0")/../.." && pwd)
python=${PYTHON:-python3}
if ! "$python" -c "import torch, numpy, safetensors" 2>/dev/null; then
    echo "gpu_check: $python cannot import torch, numpy and safetensors: nothing was measured; run it with the" \
         "Python that holds torch (PYTHON=/path/to/python3 sh $0 OUT), or use make gpu-check" >&2
    exit 2
fi
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
ln -s "$root" "$site/claire"
out=${1:-$root/build}
# the check runs in the background so that a signal (a time limit's SIGTERM, Ctrl+C) is handled at once: it stops
# the check and exits through the EXIT trap (dash runs no EXIT trap when a signal ends the shell itself)
PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" "$python" -m claire.claire_plugin.tools.gpu_check --out "$out" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null; exit 129' HUP
trap 'kill -TERM "$child" 2>/dev/null; exit 130' INT
trap 'kill -TERM "$child" 2>/dev/null; exit 143' TERM
wait "$child"
