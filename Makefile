# The two set-up commands: `make run` and `make test`. Everything they need is installed here.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
STAMP   := $(VENV)/.emberflow-installed
PYTHON  ?= python3

.PHONY: run test test-fast lint install bench clean mcu-tools ha-venv

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel
	$(PIP) install -q -e ".[llm,voice,toolchain,serving,wyoming,test,lint]"
	@# Ray has no wheel for every platform: without it the Ray placement tests skip and say why
	$(PIP) install -q -e ".[ray]" || echo "ray: not installable here (no wheel?): the Ray placement tests will skip"
	$(VENV)/bin/emberflow models install --defaults
	touch $(STAMP)

install: $(STAMP)

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

test: install mcu-tools ha-venv
	$(PY) -m pytest

# Process-free tests of the core (router table, unit contract, queues, control messages, layers): seconds.
test-fast: install
	$(PY) -m pytest tests/unit -q

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .venv-ha .pytest_cache .hypothesis
