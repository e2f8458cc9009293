# The two commands of the README: `make run` serves the API, `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install whenever pyproject.toml changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# Hypercorn, with one SO_REUSEPORT listening socket per worker (quart_app/serving/supervisor.py);
# `$(BIN)/hypercorn --config hypercorn.toml quart_app.asgi:app` serves the same app.
run: $(STAMP)
	$(BIN)/python -m quart_app.serve --config hypercorn.toml quart_app.asgi:app

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache
