# The two commands of the README: `make run` serves the API, `make test` runs every check.
# `make check` is the edit loop: lint, types and every test that starts no server.
#   make run HOST=0.0.0.0 PORT=8123 WORKERS=4     make run PYTHON=python3.13
#   make run CERTFILE=cert.pem KEYFILE=key.pem    (HTTPS and HTTP/2; `quart-app dev-cert`)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# `make run` installs what the service needs (pip install -e .); `make check` adds the
# development tools (the `dev` extra); `make bench` and `make loadtest` the benchmark peers
# (the `bench` extra: Locust, websockets, gunicorn, FastAPI, uvicorn, granian, matplotlib,
# the Flask baseline); `make test` both, since it smoke-tests the benchmarks.
RUN_STAMP := $(VENV)/.installed-run
BENCH_STAMP := $(VENV)/.installed-bench
STAMP := $(VENV)/.installed
# The interpreter $(PYTHON) is, and the one the venv was made from: a venv made by another
# (make run PYTHON=python3.13 after python3) is made anew, with nothing else deleted.
WANT_PYTHON := $(shell $(PYTHON) -c 'import os, sys; print(os.path.realpath(sys.executable))' 2>/dev/null)
HAVE_PYTHON := $(shell $(BIN)/python -c 'import os, sys; print(os.path.realpath(sys._base_executable))' 2>/dev/null)

# Python caches compiled modules (__pycache__/, ignored by git) even where the environment
# says not to: without them every server worker and test process compiles the package and
# the tests anew, a third of a server's start-up and half of pytest's.
unexport PYTHONDONTWRITEBYTECODE

HOST ?= 127.0.0.1
PORT ?= 8000
# One worker per core: token checks are CPU-bound Python.
WORKERS ?= $(shell nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
SERVE_ARGS := --config hypercorn.toml --bind $(HOST):$(PORT) --workers $(WORKERS)
CERTFILE ?=
KEYFILE ?=
# Each only when given: one without the other is refused by the server, in one line.
SERVE_ARGS += $(if $(CERTFILE),--certfile $(CERTFILE)) $(if $(KEYFILE),--keyfile $(KEYFILE))

# Debian packages the live tests and benchmarks drive; `make test-deps` installs what is
# missing (root and Debian's package index; `.ci/run` calls it). Tests never install.
TEST_DEPS := nginx nghttp2-client chromium wrk curl faketime

.PHONY: run test check test-deps lint bench loadtest docs clean FORCE

$(VENV)/pyvenv.cfg: $(if $(filter-out $(WANT_PYTHON),$(HAVE_PYTHON)),FORCE)
	@test -n "$(WANT_PYTHON)" || { echo "Error: PYTHON=$(PYTHON) does not run"; exit 2; }
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)

# Re-install whenever pyproject.toml changes, or the venv was made anew.
$(RUN_STAMP): pyproject.toml $(VENV)/pyvenv.cfg
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUN_STAMP)

$(BENCH_STAMP): pyproject.toml $(VENV)/pyvenv.cfg
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	touch $(BENCH_STAMP) $(RUN_STAMP)

$(STAMP): pyproject.toml $(VENV)/pyvenv.cfg
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP) $(RUN_STAMP)

# Hypercorn, with one SO_REUSEPORT listening socket per worker (quart_app/serving/supervisor.py);
# `$(BIN)/hypercorn $(SERVE_ARGS) quart_app.asgi:app` serves the same app.
run: $(RUN_STAMP)
	$(BIN)/python -m quart_app.serving $(SERVE_ARGS) quart_app.asgi:app

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Tests run side by side (pytest-xdist): `make check` one process per core; `make test`
# more, since live tests mostly wait on their servers. Tests marked `serial` (what they
# check depends on timing) run after the others, alone; an interrupted first phase ends the
# run there. `make check CHECK_WORKERS=0` runs everything in one process.
CORES := $(shell nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
CHECK_WORKERS ?= $(CORES)
TEST_WORKERS ?= $(shell echo $$(( $(CORES) * 2 )))
# $(1): workers, $(2): "not X and " to leave X out, $(3): further pytest options.
define side_by_side_then_serial
	$(BIN)/pytest -n $(1) --dist loadgroup -m "$(2)not serial" $(3); first=$$?; \
	if [ $$first -gt 1 ]; then exit $$first; fi; \
	$(BIN)/pytest -m "$(2)serial" $(3); second=$$?; \
	if [ $$second -eq 5 ]; then second=0; fi; \
	if [ $$first -ne 0 ]; then exit $$first; fi; exit $$second
endef

# ruff first (a fraction of a second); mypy, one process for about 25 s from a cold cache,
# beside the tests rather than before them: its report follows theirs, and a type error
# fails the run as before.
define lint_then_tests_beside_types
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@$(BIN)/mypy > $(VENV)/mypy.out 2>&1 & types=$$!; \
	( $(1) ); tests=$$?; \
	wait $$types; typed=$$?; echo "mypy:"; cat $(VENV)/mypy.out; \
	if [ $$tests -ne 0 ]; then exit $$tests; fi; exit $$typed
endef

# Everything: the live tests (real Hypercorn, nginx, Chromium...) and the benchmark smoke
# run included; what `.ci/run` runs.
test: $(STAMP) $(BENCH_STAMP)
	$(call lint_then_tests_beside_types,$(call side_by_side_then_serial,$(TEST_WORKERS),,))

# The edit loop: the tests marked `live` (they start servers) and `bench` (they need the
# bench extra) are left to `make test`; the OpenAPI fuzzer tries CHECK_FUZZ_EXAMPLES cases
# per operation and kind of data instead of the 100 `make test` tries.
CHECK_FUZZ_EXAMPLES ?= 25
check: export FUZZ_EXAMPLES = $(CHECK_FUZZ_EXAMPLES)
check: $(STAMP)
	$(call lint_then_tests_beside_types,$(call side_by_side_then_serial,$(CHECK_WORKERS),not live and not bench and ,-q))

test-deps:
	@missing=$$(for p in $(TEST_DEPS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# BENCH_ARGS=--smoke: about a second per scenario, into a temporary folder (everything runs?).
BENCH_ARGS ?=
bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

# Locust's web UI against a server that `make run` started (another terminal): open
# http://127.0.0.1:8089. LOCUST_ARGS="--headless -u 50 -r 10 -t 30s" for a run without it.
LOCUST_ARGS ?=
loadtest: $(BENCH_STAMP)
	$(BIN)/locust -f benchmarks --host http://$(HOST):$(PORT) $(LOCUST_ARGS)

# The docs/ site, served with live reload beside a `make run` (which has port 8000).
DOCS_PORT ?= 8001
docs: $(STAMP)
	$(BIN)/mkdocs serve --dev-addr $(HOST):$(DOCS_PORT)

# Build and tool caches only: instance/ (the users' database and the signing secret) is
# data, never deleted by make.
clean:
	rm -rf $(VENV) site .pytest_cache .mypy_cache .ruff_cache
