# The two set-up commands: `make run` and `make test`. Everything they need is installed here.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
STAMP   := $(VENV)/.emberflow-installed
PYTHON  ?= python3
# vision tests: real photos from packages, and TF.js (pure JS) as the conversion's numeric reference
VISION_DATA := tests/vision/.data/.complete
TFJS_REF    := tests/vision/tfjs_reference/node_modules/.package-lock.json

.PHONY: run test install bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel
	$(PIP) install -q -e ".[llm,voice,vision,toolchain,serving,test]"
	$(VENV)/bin/emberflow models install --defaults
	touch $(STAMP)

install: $(STAMP)

run: install
	$(VENV)/bin/emberflow up --preload llm

$(VISION_DATA): tests/vision/fetch_data.sh
	bash tests/vision/fetch_data.sh tests/vision/.data $(PY)

$(TFJS_REF): tests/vision/tfjs_reference/package.json tests/vision/tfjs_reference/package-lock.json
	npm ci --prefix tests/vision/tfjs_reference --silent

test: install $(VISION_DATA) $(TFJS_REF)
	$(PY) -m pytest

bench: install $(VISION_DATA)
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
