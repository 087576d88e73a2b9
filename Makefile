# One entry point for people and CI. `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DATABASE_URL ?= postgresql+psycopg2://postgres@127.0.0.1:5432/abcbank_demo
# Redis database 15 is the demo's own, so the demo never meets another worker's queue (tests use 1 to 14).
DEMO_BROKER_URL ?= redis://127.0.0.1:6379/15
SAMPLE_ROWS ?= 1000

FLOWER_PORT ?= 5555

.PHONY: help install test lint format demo sample worker flower clean

help:
	@echo "make demo    run a small bank end to end through a real worker, on a fresh demo database"
	@echo "make sample  write sample.csv: $(SAMPLE_ROWS) payments between the demo's accounts, 5 of them bad (SAMPLE_ROWS=N)"
	@echo "make test    run the test suite (real PostgreSQL)"
	@echo "make lint    ruff and mypy"
	@echo "make format  apply ruff's formatting and safe fixes"
	@echo "make worker  run a worker in the foreground (DATABASE_URL, CELERY_BROKER_URL)"
	@echo "make flower  watch the workers at http://127.0.0.1:$(FLOWER_PORT) (needs FLOWER_BASIC_AUTH=user:password)"

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy processor submit tests migrations

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

demo: install
	DATABASE_URL=$(DEMO_DATABASE_URL) CELERY_BROKER_URL=$(DEMO_BROKER_URL) $(BIN)/python -m processor.demo

sample: install
	DATABASE_URL=$(DEMO_DATABASE_URL) $(BIN)/submit generate --rows $(SAMPLE_ROWS) --out sample.csv

worker: install
	$(BIN)/celery -A processor worker --loglevel=INFO

# Flower shows payment details (accounts, amounts), so it never runs without credentials. Read-only: revoking a
# payment's task from a browser would leave it without an outcome.
flower: install
	@test -n "$$FLOWER_BASIC_AUTH" || { echo "error: set FLOWER_BASIC_AUTH=user:password first" >&2; exit 2; }
	$(BIN)/celery -A processor flower --port=$(FLOWER_PORT) --address=127.0.0.1 --read_only=true

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
