# CLAIRE for QGIS. Every entry point installs what is missing first; a second run installs nothing.
SHELL := /bin/bash
ROOT := $(abspath .)
# make splits paths at spaces: `rm -rf $(BUILD)` would remove other folders. Refuse before any recipe runs.
ifneq ($(words $(ROOT)),1)
$(error The project lies in "$(ROOT)", a path with a space, which make cannot handle (make clean would remove \
  other folders). Move or clone it to a path without spaces, e.g. ~/claire)
endif
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
# Debian's python decides the venv's version: 3.11 on Debian 12, 3.13 on Debian 13. Expanded when used
# (`=`, not `:=`): on a bare system /usr/bin/python3 only exists once the Debian packages are in.
PYVER = $(shell /usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
SITE = $(VENV)/lib/python$(PYVER)/site-packages
# torch build: auto (CUDA where an NVIDIA GPU is present, else CPU), cpu or cuda: `TORCH=cpu make test`.
TORCH ?= auto
BUILD := $(ROOT)/build
APT_PACKAGES := qgis python3-qgis qgis-providers gdal-bin python3-gdal libgdal-dev python3-dev python3-venv xvfb g++
export QT_QPA_PLATFORM ?= offscreen
export PYTHONDONTWRITEBYTECODE := 1
# Keep QGIS runs of the tests and the demo out of the user's own profile.
QGIS_ISOLATED := $(BUILD)/qgis-profile

.PHONY: all setup system venv demo demo-train test test-fast lint test-debian13 package install uninstall checkpoint bench bench-train bench-train-unseen gpu-check screenshots fusion-table clean

## `make` alone runs the demo.
all: demo

setup: venv

## Debian packages (QGIS 3.22, GDAL, venv, Xvfb); skipped when all are present.
$(BUILD)/.system-ok:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages (QGIS and its libraries: several hundred MB on a bare system): $$missing"; \
	  SUDO=$$( [ $$(id -u) -eq 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi
	@mkdir -p $(BUILD) && touch $@
system: $(BUILD)/.system-ok

## Project venv from Debian's python (so `qgis` imports), pinned deps; rasterio built against Debian's GDAL.
## A venv of another Python version (e.g. after an upgrade to Debian 13) is made anew.
$(VENV)/.deps-ok: requirements.txt requirements-dev.txt Makefile $(BUILD)/.system-ok claire_plugin/pip_deps.py
	@if [ ! -x $(PY) ] || [ ! -d $(SITE) ]; then \
	  echo "[1/3] Creating $(VENV) from /usr/bin/python3 ($(PYVER), with QGIS's system packages)"; \
	  /usr/bin/python3 -m venv --clear --system-site-packages $(VENV); \
	fi
	@ln -sfn $(ROOT) $(SITE)/claire
	@echo "[2/3] Installing torch (TORCH=$(TORCH)); a first install downloads 190 MB (CPU) to 2.7 GB (CUDA)"
	@$(PY) -m claire.claire_plugin.pip_deps torch --variant $(TORCH)
	@echo "[3/3] Installing rasterio (compiled against Debian's GDAL: a few minutes), transformers, pytest"
	@$(PY) -m pip install --no-binary rasterio -r requirements.txt -r requirements-dev.txt
	@touch $@
	@echo "Python environment ready: $(VENV)"
## The `claire` command, written on every run (cheap): the __main__ guard lets `--scheduler local:N` start worker
## processes, which import the main module again.
venv: $(VENV)/.deps-ok
	@printf '#!%s\nimport sys\nfrom claire.claire_plugin.cli.main import main\nif __name__ == "__main__":\n    sys.exit(main())\n' $(PY) > $(VENV)/bin/claire.tmp
	@chmod +x $(VENV)/bin/claire.tmp && mv -f $(VENV)/bin/claire.tmp $(VENV)/bin/claire

## Main job: classify the bundled real Sentinel-2 + Sentinel-1 pair through real QGIS (qgis_process).
demo: venv
	@$(PY) -m claire.claire_plugin.tools.demo --build $(BUILD)

## Teach the model a farmland scene it gets wrong: 12 hand-drawn polygons, claire:train, before/after PNG.
demo-train: venv
	@$(PY) -m claire.claire_plugin.tools.demo_train --build $(BUILD) $(if $(MINUTES),--minutes $(MINUTES)) $(if $(EPOCHS),--epochs $(EPOCHS))

## The whole test suite (installs what is missing first): about 10 minutes on 2 cores.
test: venv
	$(PY) -m pytest

## The QGIS-free rooms without the long end-to-end checks (a minute or two).
test-fast: venv
	$(PY) -m pytest tests/models tests/core -m "not slow"

## Style and correctness checks (ruff, configured in pyproject.toml).
lint: venv
	$(VENV)/bin/ruff check .

## The same `make test` inside a Debian 13 root (QGIS 3.40, Python 3.13, NumPy 2) made by debootstrap (root only).
test-debian13:
	@claire_plugin/tools/debian13.sh test

## build/claire.zip (Install from ZIP) and build/plugins.xml (custom repository; BASE_URL=https://... where served).
package:
	@mkdir -p $(BUILD)/import && ln -sfn $(ROOT) $(BUILD)/import/claire
	@PYTHONPATH=$(BUILD)/import /usr/bin/python3 -m claire.claire_plugin.tools.package --out $(BUILD) $(if $(BASE_URL),--base-url $(BASE_URL))

## Install into the user's QGIS profile and enable it (QGIS desktop and plain qgis_process find it).
install: venv
	@$(PY) -m claire.claire_plugin.install install

uninstall:
	@$(PY) -m claire.claire_plugin.install uninstall

## Retrain the bundled default checkpoint from the bundled data: seeded, and with --reproducible the same
## weights and card metrics on any x86-64 CPU of one system image (portable kernels, one thread; models/determinism.py).
checkpoint: venv
	OMP_NUM_THREADS=1 ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE $(VENV)/bin/claire train --arch claire \
	  --size small --data resources/data/terramesh \
	  --layout terramesh-levels --context local --cloud-gate --holdout 0.25 \
	  --epochs 60 --steps-per-epoch 20 --batch-size 8 --crop 128 \
	  --seed 0 --threads 1 --device cpu --reproducible --half --note "bundled default: make checkpoint" \
	  --output resources/checkpoints/claire_default.safetensors

## Tiled-engine benchmark at its default sizes (up to 8192²: several minutes and about 2 GB); build/bench.json.
bench: venv
	$(VENV)/bin/claire bench --json $(BUILD)/bench.json

## Polygon training as a user does it, on the bundled sites: N = 5 / 10 / 20 polygons per class, three seeds,
## every model of a run (network, untuned, forest, the two averaged) on held-out polygons and the whole map.
bench-train: venv
	$(VENV)/bin/claire bench-train --seeds 0,1,2 --json $(BUILD)/bench_train.json

## The same at claire train's default length, each site fine-tuned from a base trained without it (three bases
## of about 10 minutes each on 2 cores, kept in build/bench_train_unseen and reused).
bench-train-unseen: venv
	$(VENV)/bin/claire bench-train --unseen --seeds 0,1,2 --epochs 12 --steps-per-epoch 20 \
	  --folder $(BUILD)/bench_train_unseen --json $(BUILD)/bench_train_unseen.json

## On a CUDA GPU (under 8 minutes): the forward at 4096² and 8192² in fp32 and mixed precision, a few AMP training
## steps of the base model, then the engine end to end; build/gpu_check.json + .md. Without a GPU it says so and
## exits 0. Without make's set-up (a GPU machine that cannot install): sh claire_plugin/tools/gpu_check.sh OUT
gpu-check: venv
	$(PY) -m claire.claire_plugin.tools.gpu_check --out $(BUILD)

## Screenshots: QGIS-like windows, then real QGIS desktop (Xvfb): the cloudy scene, and the Train tab walked
## through on the farmland patch (about 3 minutes: 12 epochs within a MINUTES=5 ceiling, 1 thread; numbers in train_walk.json), and the
## magic wand clicked at the shipped polygons (train_wand.png / .json), and the map of macroclasses.
screenshots: venv
	$(PY) -m claire.claire_plugin.tools.screenshots --out docs/screenshots
	rm -rf $(BUILD)/qgis-shots && $(PY) -m claire.claire_plugin.tools.screenshots_cloud --out docs/screenshots --qgis $(BUILD)/qgis-shots
	rm -rf $(BUILD)/qgis-walk && OMP_NUM_THREADS=1 $(PY) -m claire.claire_plugin.tools.screenshots_walk --out docs/screenshots \
	  --qgis $(BUILD)/qgis-walk $(if $(MINUTES),--minutes $(MINUTES))
	rm -rf $(BUILD)/qgis-wand && $(PY) -m claire.claire_plugin.tools.screenshots_wand --out docs/screenshots --qgis $(BUILD)/qgis-wand
	rm -rf $(BUILD)/qgis-macro && $(PY) -m claire.claire_plugin.tools.screenshots_macro --out docs/screenshots --qgis $(BUILD)/qgis-macro

## Train claire, asanet, optical_only and sar_only on the same budget: docs/fusion_table.md (about an hour).
fusion-table: venv
	OMP_NUM_THREADS=1 $(VENV)/bin/claire fusion-table --threads 1 --epochs 15 --steps-per-epoch 20 \
	  --checkpoint resources/checkpoints/claire_default.safetensors --out docs/fusion_table.md

## Remove build/ (refused while something is still mounted under it).
clean:
	@if findmnt -rn -o TARGET | grep -q '^$(BUILD)/'; then \
	  echo "Something is still mounted under $(BUILD) (make test-debian13 interrupted?). Fix: umount -R it first."; exit 1; fi
	rm -rf $(BUILD)
