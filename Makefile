# Set-up and checks in one place. `make test` creates the development environment in .venv
# (the package and the `dev` dependency group of pyproject.toml), `make demo` a small one in
# .venv-demo (the package alone), each when it is missing or older than the project file.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_VENV := .venv-demo
DEMO_STAMP := $(DEMO_VENV)/.installed
PIP_QUIET := --quiet --disable-pip-version-check

.PHONY: demo test lint typecheck docs pytest pytest-side-by-side pytest-under-load pythons \
	sdist-smoke bench reliability compat clean redis-server chromium docs-browser vendor-mermaid

# The Redis tests start their own redis-server processes: install it when missing (as root,
# from Debian's packages), or say how to.
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing redis-server (the tests start their own servers)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; \
	  else \
	    echo "redis-server is missing: install it (apt-get install redis-server), the Redis tests need it"; \
	    exit 1; \
	  fi; }

# The browser test of the docs site (tests/test_docs_site.py) drives Debian's chromium through
# chromium-driver: install them when missing (as root, from Debian's packages), or say how to.
chromium:
	@{ command -v chromium && command -v chromedriver; } >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium and chromium-driver (the docs site's browser test)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	  else \
	    echo "chromium or chromedriver is missing: install them (apt-get install chromium chromium-driver), the docs site's browser test needs them"; \
	    exit 1; \
	  fi; }

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("stratacache needs Python >= 3.11, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	@# uv (of the dev group: nox builds its sessions with it too) installs the group in about
	@# 30 s, where pip took about 100 s with a warm cache. --compile-bytecode, as pip does:
	@# compiled once here, not by the suite's first processes (Python under valgrind among
	@# them). pip stays in the venv, >= 25.1 for `pip install -e . --group dev` by hand
	@# (PEP 735 dependency groups).
	$(BIN)/python -m pip install $(PIP_QUIET) --upgrade 'pip>=25.1' 'uv>=0.8'
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e . --group dev
	@touch $@

# The demo needs the package and its runtime dependencies only, not the development tools.
$(DEMO_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("stratacache needs Python >= 3.11, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/python -m pip install $(PIP_QUIET) -e .
	@touch $@

## Run the quickstart demo on the embedded default (no Redis needed), in its own small venv.
demo: $(DEMO_STAMP)
	$(DEMO_VENV)/bin/python examples/quickstart.py

## Run the whole test suite: lint, format, types, the docs site, pytest with branch coverage
## >= 90%, and the suites on Python 3.12 and 3.13. Everything but the scenarios under load runs
## side by side (make -j; each target's output comes out whole), then the tests under load alone.
test: $(STAMP) redis-server
	$(MAKE) --no-print-directory -j --output-sync=target lint typecheck docs pytest-side-by-side \
	  $(PYTHON_SESSIONS)
	$(MAKE) --no-print-directory pytest-under-load

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

## The documentation site (mkdocs.yml) into site/; any warning (a broken link, a page missing
## from the nav) fails. Not --quiet: it silences the warnings, and then --strict counts none.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

## The docs site in headless chromium alone (also part of `make pytest`): every page, the
## diagrams, the search, the links.
docs-browser: $(STAMP) chromium docs
	STRATACACHE_DOCS_SITE=site $(BIN)/python -m pytest tests/test_docs_site.py

## pytest with branch coverage in two steps. First every test but those marked under_load, in
## PYTEST_WORKERS processes (pytest-xdist: most tests wait on servers, sleeps and timeouts
## rather than on the CPU); then those in this process alone, one after another: their own
## timings or a shared topology make them sensitive to load (RUN_ALONE in tests/conftest.py).
## The first step collects its longest modules first (LONG_FIRST there), and keeps that order
## (--no-loadscope-reorder), so that they do not start last and end the step late.
## The second step adds its coverage to the first's and enforces the threshold. The browser
## test reads the site the docs target built (STRATACACHE_DOCS_SITE) instead of building it.
PYTEST_WORKERS ?= 3
PYTEST := STRATACACHE_DOCS_SITE=site $(BIN)/python -m pytest --cov --durations=25
pytest:
	$(MAKE) --no-print-directory pytest-side-by-side
	$(MAKE) --no-print-directory pytest-under-load

pytest-side-by-side: $(STAMP) redis-server chromium docs
	rm -f .coverage .coverage.*
	$(PYTEST) -m 'not under_load' -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder \
	  --cov-report= \
	  --cov-fail-under=0 $(PYTEST_ARGS)

pytest-under-load: $(STAMP) redis-server
	$(PYTEST) -m under_load --cov-append --cov-report=term $(PYTEST_ARGS)

## The conformance, decorator, settings and asyncio suites on Python 3.12 and 3.13 (noxfile.py),
## one nox session each, side by side, with pyenv's interpreters on PATH; a missing
## interpreter fails the target.
PYENV_BINS := $(subst $(eval) ,:,$(wildcard $(shell pyenv root 2>/dev/null)/versions/3.1[23].*/bin))
PYTHON_SESSIONS := python-3.12 python-3.13
pythons:
	$(MAKE) --no-print-directory -j --output-sync=target $(PYTHON_SESSIONS)

python-%: $(STAMP) redis-server
	PATH="$(PYENV_BINS):$$PATH" $(BIN)/nox --error-on-missing-interpreters --session suites-$*

## Benchmarks (side by side, ratios to the anchors).
bench: $(STAMP) redis-server
	$(BIN)/python benchmarks/run.py

## The fault and hostile-input suite with the 60 s soak; renders docs/reliability.md from its figures.
reliability: $(STAMP) redis-server
	rm -rf build/reliability
	STRATACACHE_SOAK=1 $(BIN)/python -m pytest -m reliability tests/reliability
	$(BIN)/python docs/generate_reliability.py

## Flask-Caching's and cachelib's own test suites against our integration and backends:
## downloads their released sdists (PyPI), runs them in build/compat/venv (not .venv) with
## compat/adapter.py swapping their classes for ours, and writes docs/compatibility.md.
## Not part of `make test` (it downloads).
compat: $(STAMP) redis-server
	$(BIN)/python compat/run.py

## Vendor mermaid (MIT; its bundled notices are at the end of mermaid.min.js) into
## docs/vendor/mermaid/ from the npm registry: the docs' diagrams then render offline.
MERMAID_VERSION := 11.17.2
vendor-mermaid:
	rm -rf build/mermaid && mkdir -p build/mermaid
	cd build/mermaid && npm pack --silent mermaid@$(MERMAID_VERSION) && tar xzf mermaid-$(MERMAID_VERSION).tgz
	cp build/mermaid/package/dist/mermaid.min.js build/mermaid/package/LICENSE docs/vendor/mermaid/

clean:
	rm -rf $(VENV) $(DEMO_VENV) .coverage .coverage.* .mypy_cache .ruff_cache .pytest_cache .hypothesis build dist site
