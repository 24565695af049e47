# The two set-up commands: `make run` and `make test`. Everything they need is installed here.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
STAMP   := $(VENV)/.emberflow-installed
PYTHON  ?= python3

.PHONY: run test install bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel
	$(PIP) install -q -e ".[llm,voice,toolchain,serving,test]"
	$(VENV)/bin/emberflow models install --defaults
	touch $(STAMP)

install: $(STAMP)

run: install
	$(VENV)/bin/emberflow up --preload llm

test: install
	$(PY) -m pytest

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
