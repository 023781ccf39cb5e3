# CLAIRE for QGIS. Every entry point installs what is missing first; a second run installs nothing.
SHELL := /bin/bash
ROOT := $(abspath .)
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
SITE := $(VENV)/lib/python3.11/site-packages
BUILD := $(ROOT)/build
APT_PACKAGES := qgis python3-qgis qgis-providers gdal-bin python3-gdal libgdal-dev python3-dev python3-venv xvfb g++
export QT_QPA_PLATFORM ?= offscreen
export PYTHONDONTWRITEBYTECODE := 1
# Keep QGIS runs of the tests and the demo out of the user's own profile.
QGIS_ISOLATED := $(BUILD)/qgis-profile

.PHONY: all setup system venv demo test test-fast lint install uninstall checkpoint bench gpu-check screenshots fusion-table clean

all: demo

setup: venv

## Debian packages (QGIS 3.22, GDAL, venv, Xvfb); skipped when all are present.
$(BUILD)/.system-ok:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages: $$missing"; \
	  SUDO=$$( [ $$(id -u) -eq 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@mkdir -p $(BUILD) && touch $@
system: $(BUILD)/.system-ok

## Project venv from Debian's python (so `qgis` imports), pinned deps; rasterio built against Debian's GDAL.
$(VENV)/.deps-ok: requirements.txt requirements-dev.txt Makefile $(BUILD)/.system-ok
	@[ -x $(PY) ] || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --no-binary rasterio -r requirements.txt -r requirements-dev.txt
	@ln -sfn $(ROOT) $(SITE)/claire
	@printf '#!%s\nimport sys\nfrom claire.claire_plugin.cli.main import main\nsys.exit(main())\n' $(PY) > $(VENV)/bin/claire
	@chmod +x $(VENV)/bin/claire
	@touch $@
venv: $(VENV)/.deps-ok

## Main job: classify the bundled real Sentinel-2 + Sentinel-1 pair through real QGIS (qgis_process).
demo: venv
	@$(PY) -m claire.claire_plugin.tools.demo --build $(BUILD)

test: venv
	$(PY) -m pytest

## The QGIS-free rooms without the long end-to-end checks (a minute or two).
test-fast: venv
	$(PY) -m pytest tests/models tests/core -m "not slow"

## Style and correctness checks (ruff, configured in pyproject.toml).
lint: venv
	$(VENV)/bin/ruff check .

## Install into the user's QGIS profile and enable it (QGIS desktop and plain qgis_process find it).
install: venv
	@$(PY) -m claire.claire_plugin.install install

uninstall:
	@$(PY) -m claire.claire_plugin.install uninstall

## Retrain the bundled default checkpoint from the bundled data (seeded, reproducible).
checkpoint: venv
	OMP_NUM_THREADS=1 $(VENV)/bin/claire train --arch claire --size small --data resources/data/terramesh \
	  --layout terramesh --holdout 0.25 --epochs 60 --steps-per-epoch 20 --batch-size 8 --crop 128 \
	  --seed 0 --threads 1 --half --note "bundled default: make checkpoint" \
	  --output resources/checkpoints/claire_default.safetensors

bench: venv
	$(VENV)/bin/claire bench --json $(BUILD)/bench.json

## On a CUDA GPU (under 8 minutes): bench at 4096² and 8192² in fp32 and mixed precision, a few AMP training
## steps of the base model; build/gpu_check.json + .md. Without a GPU it says so and exits 0.
gpu-check: venv
	$(PY) -m claire.claire_plugin.tools.gpu_check --out $(BUILD)

screenshots: venv
	$(PY) -m claire.claire_plugin.tools.screenshots --out docs/screenshots

fusion-table: venv
	OMP_NUM_THREADS=1 $(VENV)/bin/claire fusion-table --threads 1 --epochs 15 --steps-per-epoch 20 \
	  --out docs/fusion_table.md

clean:
	rm -rf $(BUILD)
