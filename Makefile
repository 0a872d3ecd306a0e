# Two entry points for users (README quick start): `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint clean-venv kernels docs docs-screenshots

# pip builds the compiled kernels (hierbayes/bayes/kernels and hierbayes/linalg/kernels, setup.py)
# into the package folders: an edited kernel file is rebuilt by the next `make test` or `make demo`.
KERNEL_FILES := $(wildcard hierbayes/bayes/kernels/*) $(wildcard hierbayes/linalg/kernels/*)
$(STAMP): pyproject.toml setup.py hierbayes/kernel_sources.py $(KERNEL_FILES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/sleepstudy.py

# tools/check_layout.py: no import cycles, engines that never import the report layer,
# no private imports across modules, no module over 600 lines (docs/architecture.md).
test: $(STAMP)
	$(PY) -m ruff check hierbayes tests examples benchmarks tools conftest.py setup.py
	$(PY) tools/check_layout.py
	$(PY) -m pytest -q -rs

lint: $(STAMP)
	$(PY) -m ruff check hierbayes tests examples benchmarks tools conftest.py setup.py
	$(PY) tools/check_layout.py

# The documentation site (docs/conf.py): Sphinx, the PyData theme and MyST-NB, every notebook in
# docs/notebooks executed, warnings as errors. HIERBAYES_NB_EXECUTION=off skips the notebooks
# while editing prose.
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[test,docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	rm -rf docs/_build/html docs/api/generated
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html
	@echo "docs built: docs/_build/html/index.html"

# Screenshots of the built site for review (docs/screenshots/), by headless Chromium (Debian:
# apt-get install chromium libjs-mathjax). The site loads MathJax from its CDN; offline, build it
# with Debian's MathJax first: HIERBAYES_MATHJAX2=/usr/share/javascript/mathjax/MathJax.js make docs
CHROMIUM ?= chromium
SHOT = $(CHROMIUM) --headless --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
	--allow-file-access-from-files --virtual-time-budget=15000
docs-screenshots:
	mkdir -p docs/screenshots
	$(SHOT) --window-size=1400,1000 --screenshot=docs/screenshots/site.png \
		file://$(CURDIR)/docs/_build/html/index.html
	$(SHOT) --window-size=1400,4000 --screenshot=docs/screenshots/notebook.png \
		file://$(CURDIR)/docs/_build/html/notebooks/sleepstudy-pooling.html

clean-venv:
	rm -rf $(VENV) hierbayes/bayes/_ckernels*.so hierbayes/bayes/_ckernels*.pyd \
		hierbayes/linalg/_cblocked*.so hierbayes/linalg/_cblocked*.pyd

# Rebuild the kernels in place without pip (same flags and source hash as setup.py), with the
# venv's Python if there is one.
kernels:
	$(if $(wildcard $(PY)),$(PY),$(PYTHON)) tools/build_kernels.py

.PHONY: bench bench-reml bench-glmm bench-structures bench-sampler bench-many bench-deps sbc gallery
# Peers run in the same process tree; install them into .venv first (R's lme4 is found if on PATH).
bench-deps: $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]"

bench: bench-deps
	$(PY) benchmarks/run.py $(BENCH_ARGS)

bench-reml: bench-deps
	$(PY) benchmarks/reml.py $(BENCH_ARGS)

# GLMMs (issue 19): hb.glmer and the Bayesian fit beside glmer, glmmTMB and brms (R peers when
# installed) on speed_dating and a simulated 100,000-row Bernoulli model (benchmarks/results/glmm.md).
bench-glmm: bench-deps
	$(PY) benchmarks/glmm.py $(BENCH_ARGS)

# Covariance structures (issue 20): terms on one grouping factor, varIdent/corAR1 and glmmTMB's
# structured terms by both engines beside lme4, nlme, glmmTMB and brms (benchmarks/results/structures.md).
bench-structures: $(STAMP)
	$(PY) benchmarks/structures.py $(BENCH_ARGS)

# ESS per gradient and per second of hierbayes's sampler, median over seeds (benchmarks/results/sampler.md).
bench-sampler: $(STAMP)
	$(PY) benchmarks/sampler.py $(BENCH_ARGS)

# Many fits (issue 22): bootstrap, k-fold and a power curve serially, on 2 local workers and a
# 2-worker Dask cluster beside bootMer, brms's kfold and simr (benchmarks/results/many.md).
bench-many: $(STAMP)
	$(PY) benchmarks/many.py $(BENCH_ARGS)

# Simulation-based calibration of every sampler form and family (benchmarks/sbc.py; variants
# one by one with --variants); results in docs/sbc/.
sbc: $(STAMP)
	$(PY) benchmarks/sbc.py

# The figures of docs/gallery.md, drawn from sleepstudy by examples/pooling.py.
gallery: $(STAMP)
	$(PY) examples/pooling.py --gallery
