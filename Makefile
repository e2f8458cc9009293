# The two commands of the README: `make run` serves the API, `make test` runs every check.
#   make run HOST=0.0.0.0 PORT=8123 WORKERS=4     make run PYTHON=python3.13
#   make run CERTFILE=cert.pem KEYFILE=key.pem    (HTTPS and HTTP/2; `quart-app dev-cert`)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# `make run` installs what the service needs (pip install -e .); `make test` adds the
# development and benchmark extras on top (pip install -e ".[dev]").
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed

HOST ?= 127.0.0.1
PORT ?= 8000
# One worker per core: token checks are CPU-bound Python.
WORKERS ?= $(shell nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
SERVE_ARGS := --config hypercorn.toml --bind $(HOST):$(PORT) --workers $(WORKERS)
CERTFILE ?=
KEYFILE ?=
SERVE_ARGS += $(if $(CERTFILE),--certfile $(CERTFILE) --keyfile $(KEYFILE))

# Debian packages the live tests and benchmarks drive; `make test-deps` installs what is
# missing (root and Debian's package index; `.ci/run` calls it). Tests never install.
TEST_DEPS := nginx nghttp2-client chromium wrk curl faketime

.PHONY: run test test-deps lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install whenever pyproject.toml changes.
$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP) $(RUN_STAMP)

# Hypercorn, with one SO_REUSEPORT listening socket per worker (quart_app/serving/supervisor.py);
# `$(BIN)/hypercorn $(SERVE_ARGS) quart_app.asgi:app` serves the same app.
run: $(RUN_STAMP)
	$(BIN)/python -m quart_app.serve $(SERVE_ARGS) quart_app.asgi:app

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

test-deps:
	@missing=$$(for p in $(TEST_DEPS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends $$missing; \
	fi

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache
