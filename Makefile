# Two entry points: `make demo` (set up, then pull a sample image from a throwaway local registry)
# and `make test` (set up, then lint, type-check and run the whole test suite).
PYTHON ?= python3
VENV   ?= .venv
UV_VERSION = 0.13.9
BIN = $(VENV)/bin

.PHONY: demo test setup system-deps lint typecheck pytest bench clean-venv lock

system-deps:
	sh scripts/install-system-deps.sh

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.installed: requirements.lock pyproject.toml | $(BIN)/uv
	$(BIN)/uv pip sync -q --compile-bytecode --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python --no-deps -e .
	touch $@

setup: system-deps $(VENV)/.installed

demo: setup
	$(BIN)/python scripts/demo.py

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy

pytest:
	$(BIN)/python -m pytest -q

test: setup lint typecheck pytest

bench: setup
	$(BIN)/python bench/pull_bench.py

lock: | $(BIN)/uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 -o requirements.lock -q
