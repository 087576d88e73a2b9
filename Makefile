# One entry point for people and CI. `make demo` and `make test` work on a fresh clone; `make` lists the targets.
# A target is listed when its line ends in `## what it does`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DATABASE_URL ?= postgresql+psycopg2://postgres@127.0.0.1:5432/abcbank_demo
# Redis database 15 is the demo's own, so the demo never meets another worker's queue (tests use 1 to 14).
DEMO_BROKER_URL ?= redis://127.0.0.1:6379/15
SAMPLE_ROWS ?= 1000
FLOWER_PORT ?= 5555
WEB_PORT ?= 8000
# `make test T=tests/unit/test_money.py` (or a node, T=tests/unit/test_money.py::test_name) runs just that.
T ?=
# Test processes (pytest-xdist): each has its own database and Redis database. The end-to-end tests mostly wait on
# real workers and timeouts, so more processes than cores shorten the run; TEST_PROCESSES=0 runs in this process.
TEST_PROCESSES ?= 4
BENCH_ROWS ?= 100000
BENCH_ARGS ?=
# The lock files are resolved for the image's Python (python:3.11-slim) on Linux, with every file's hash.
# `make lock LOCK_ARGS=--upgrade` moves every pin to the newest version pyproject.toml allows.
LOCK_ARGS ?=
LOCK_FLAGS = --generate-hashes --python-version 3.11 --python-platform linux --custom-compile-command 'make lock' \
	--quiet $(LOCK_ARGS)

.DEFAULT_GOAL := help
.PHONY: help install lock test unit integration e2e faults lint format demo sample bench worker flower web clean

help: ## list the targets
	@echo "usage: make TARGET [VARIABLE=value ...]"
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# The same pinned versions as CI and the image (requirements-dev.lock is requirements.lock plus the [dev] tools),
# each file checked against its hash; then this project, editable, adding nothing to the pins.
install: $(VENV)/.installed ## make .venv: the locked dependencies, then this project (editable)

$(VENV)/.installed: requirements.lock requirements-dev.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

# After a change to the dependencies in pyproject.toml. The dev lock first, then the runtime one held to the dev
# lock's versions, so the image runs what the tests ran. Existing pins stay unless pyproject.toml rules them out.
lock: install ## regenerate the lock files (LOCK_ARGS=--upgrade for the newest versions allowed)
	$(BIN)/uv pip compile pyproject.toml --extra dev $(LOCK_FLAGS) -o requirements-dev.lock
	$(BIN)/uv pip compile pyproject.toml -c requirements-dev.lock $(LOCK_FLAGS) -o requirements.lock

test: install ## run the test suite on real PostgreSQL and Redis (T=path or T=path::test for just that)
	$(BIN)/pytest -n $(TEST_PROCESSES) --dist loadfile $(T)

unit: install ## run tests/unit: the domain and the message models, no services needed
	$(BIN)/pytest -n $(TEST_PROCESSES) --dist loadfile tests/unit

integration: install ## run tests/integration: services, CLIs and migrations on PostgreSQL
	$(BIN)/pytest -n $(TEST_PROCESSES) --dist loadfile tests/integration

e2e: install ## run tests/e2e: real worker processes, Redis and PostgreSQL
	$(BIN)/pytest -n $(TEST_PROCESSES) --dist loadfile tests/e2e

# Its own PostgreSQL cluster and Redis server, so that stopping and filling them touches no one else's; about 4 min.
faults: install ## run the fault suite (tests/faults) on private servers; FAULTS_SEED=n replays a run
	$(BIN)/pytest tests/faults -m faults

lint: install ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy processor submit tests migrations bench

format: install ## apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

demo: install ## run a small bank end to end through a real worker, on a fresh demo database
	DATABASE_URL=$(DEMO_DATABASE_URL) CELERY_BROKER_URL=$(DEMO_BROKER_URL) $(BIN)/python -m processor.demo

sample: install ## write sample.csv: SAMPLE_ROWS (1000) payments between the demo's accounts, 5 of them bad
	DATABASE_URL=$(DEMO_DATABASE_URL) $(BIN)/submit generate --rows $(SAMPLE_ROWS) --out sample.csv

bench: install ## run the benchmark (python -m bench) on BENCH_ROWS (100000) payments; BENCH_ARGS go to it
	BENCH_ROWS=$(BENCH_ROWS) $(BIN)/python -m bench $(BENCH_ARGS)

worker: install ## run a worker in the foreground (DATABASE_URL, CELERY_BROKER_URL)
	$(BIN)/celery -A processor worker --loglevel=INFO

# Flower shows payment details (accounts, amounts), so it never runs without credentials. Read-only: revoking a
# payment's task from a browser would leave it without an outcome.
flower: install ## watch the workers at http://127.0.0.1:FLOWER_PORT (5555); needs FLOWER_BASIC_AUTH=user:password
	@test -n "$$FLOWER_BASIC_AUTH" || { echo "error: set FLOWER_BASIC_AUTH=user:password first" >&2; exit 2; }
	$(BIN)/celery -A processor flower --port=$(FLOWER_PORT) --address=127.0.0.1 --read_only=true

# Flask's development server, on the loopback only; docker-compose.yml runs the same app under gunicorn.
web: install ## serve the HTTP API and the console at http://127.0.0.1:WEB_PORT (8000) (DATABASE_URL, CELERY_BROKER_URL)
	$(BIN)/flask --app processor.web:create_app run --host 127.0.0.1 --port $(WEB_PORT)

clean: ## remove .venv and the caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info build dist
