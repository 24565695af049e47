# The two set-up commands: `make run` and `make test`. Everything they need is installed here.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
STAMP   := $(VENV)/.emberflow-installed
PYTHON  ?= python3

.PHONY: run test install bench clean mcu-tools

$(STAMP): pyproject.toml Makefile
	$(MAKE) mcu-tools
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel
	$(PIP) install -q -e ".[llm,voice,toolchain,serving,test]"
	$(VENV)/bin/emberflow models install --defaults
	touch $(STAMP)

install: $(STAMP)

# The Cortex-M cross toolchain and QEMU for `emberflow compile` builds and emulated runs (Debian
# packages; needs root). Skipped when already installed, so it is cheap to run every time.
MCU_PACKAGES := gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm
mcu-tools:
	@if command -v arm-none-eabi-gcc >/dev/null && command -v qemu-system-arm >/dev/null \
	    && test -d /usr/lib/arm-none-eabi/newlib; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(MCU_PACKAGES); \
	else echo "mcu-tools: install $(MCU_PACKAGES) (as root: apt-get install ...); MCU tests will skip"; fi

run: install
	$(VENV)/bin/emberflow up --preload llm

test: install
	$(PY) -m pytest

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
