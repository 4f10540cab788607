# Shortcuts; the README's two commands need only Python.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test bench lint
$(PY):
	python3 -m venv $(VENV) && $(VENV)/bin/pip install -q -e '.[test]'

demo: $(PY)
	$(VENV)/bin/mnky-profiles demo

test: $(PY)
	$(PY) -m pytest

bench: $(PY)
	$(PY) benchmarks/bench_core.py

lint: $(PY)
	$(VENV)/bin/pip install -q -e '.[dev]' && $(VENV)/bin/ruff check . && .ci/typecheck
