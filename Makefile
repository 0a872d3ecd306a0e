# Two entry points for users (README quick start): `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint clean-venv

# pip builds the compiled kernels (hierbayes/bayes/_ckernels.c, setup.py) into the package folder:
# an edited kernel is rebuilt by the next `make test` or `make demo`.
$(STAMP): pyproject.toml setup.py hierbayes/bayes/_ckernels.c
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/sleepstudy.py

test: $(STAMP)
	$(PY) -m ruff check hierbayes tests examples benchmarks conftest.py setup.py
	$(PY) -m pytest -q -rs

lint: $(STAMP)
	$(PY) -m ruff check hierbayes tests examples benchmarks conftest.py setup.py

clean-venv:
	rm -rf $(VENV) hierbayes/bayes/_ckernels*.so hierbayes/bayes/_ckernels*.pyd

.PHONY: bench bench-reml bench-deps sbc gallery
# Peers run in the same process tree; install them into .venv first (R's lme4 is found if on PATH).
bench-deps: $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]"

bench: bench-deps
	$(PY) benchmarks/run.py $(BENCH_ARGS)

bench-reml: bench-deps
	$(PY) benchmarks/reml.py $(BENCH_ARGS)

# Simulation-based calibration (about a minute per 200 replicates); results in docs/sbc/.
sbc: $(STAMP)
	$(PY) benchmarks/sbc.py

# The figures of docs/gallery.md, drawn from sleepstudy by examples/pooling.py.
gallery: $(STAMP)
	$(PY) examples/pooling.py --gallery
