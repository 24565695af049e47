# The two set-up commands: `make run` and `make test`. Everything they need is installed here.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
STAMP   := $(VENV)/.emberflow-installed
PYTHON  ?= python3
# vision tests: real photos from packages, and TF.js (pure JS) as the conversion's numeric reference
VISION_DATA := tests/vision/.data/.complete
TFJS_REF    := tests/vision/tfjs_reference/node_modules/.package-lock.json

# The dashboard's front-end libraries, vendored from npm as published (no bundler, no CDN): the
# versions are pinned in web/package-lock.json, whose integrity hashes `npm ci` checks.
VENDOR     := src/emberflow/serving/dashboard/static/vendor
VENDOR_STAMP := $(VENDOR)/.installed
# Debian's Chromium for the dashboard's browser tests (Playwright drives it; it downloads no browser).
CHROMIUM   := /usr/bin/chromium

.PHONY: run test test-fast lint install bench clean mcu-tools dashboard-assets browser ha-venv

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel
	$(PIP) install -q -e ".[llm,voice,vision,toolchain,serving,wyoming,test,lint]"
	@# Ray has no wheel for every platform: without it the Ray placement tests skip and say why
	$(PIP) install -q -e ".[ray]" || echo "ray: not installable here (no wheel?): the Ray placement tests will skip"
	$(VENV)/bin/emberflow models install --defaults
	touch $(STAMP)

$(VENDOR_STAMP): web/package.json web/package-lock.json
	cd web && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	mkdir -p $(VENDOR)
	cp web/node_modules/alpinejs/dist/cdn.min.js $(VENDOR)/alpine.min.js
	cp web/node_modules/cytoscape/dist/cytoscape.min.js $(VENDOR)/cytoscape.min.js
	cp web/node_modules/uplot/dist/uPlot.iife.min.js web/node_modules/uplot/dist/uPlot.min.css $(VENDOR)/
	touch $(VENDOR_STAMP)

dashboard-assets: $(VENDOR_STAMP)

# Idempotent: installs only when missing (CI runs as root on a clean machine).
$(CHROMIUM):
	DEBIAN_FRONTEND=noninteractive apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core

browser: $(CHROMIUM)

install: $(STAMP) $(VENDOR_STAMP)

# The Cortex-M cross toolchain and QEMU for `emberflow compile` builds and emulated runs (Debian
# packages, installed non-interactively; needs root or password-less sudo). A few checks when they
# are installed, so `make test` runs it every time; it fails with what to do when they are missing
# and cannot be installed. MCU_TOOLS=skip leaves them out (the cross-build and QEMU tests skip).
MCU_TOOLS ?= install
mcu-tools:
ifeq ($(MCU_TOOLS),skip)
	@echo "mcu-tools: skipped (MCU_TOOLS=skip): the cross-build and QEMU tests will skip"
else
	@bash scripts/mcu-tools.sh
endif

# Home Assistant's own Wyoming classes, in a venv of their own (HA pins its dependencies); the
# Wyoming tests drive them against emberflow. HA_VENV=skip leaves it out (those tests skip).
HA_VENV ?= install
ha-venv:
ifeq ($(HA_VENV),skip)
	@echo "ha-venv: skipped (HA_VENV=skip): the Home Assistant tests will skip"
else
	@bash scripts/ha-venv.sh $(PYTHON) .venv-ha
endif

run: install
	$(VENV)/bin/emberflow up --preload llm

$(VISION_DATA): tests/vision/fetch_data.sh
	bash tests/vision/fetch_data.sh tests/vision/.data $(PY)

$(TFJS_REF): tests/vision/tfjs_reference/package.json tests/vision/tfjs_reference/package-lock.json
	npm ci --prefix tests/vision/tfjs_reference --silent

test: install mcu-tools browser ha-venv $(VISION_DATA) $(TFJS_REF)
	$(PY) -m pytest

# Process-free tests of the core (router table, unit contract, queues, control messages, layers): seconds.
test-fast: install
	$(PY) -m pytest tests/unit -q

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

bench: install $(VISION_DATA)
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .venv-ha .pytest_cache .hypothesis
