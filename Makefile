# `make run` serves the shop; `make test` runs the whole suite on PostgreSQL, Redis and a real
# Celery worker. Both install what they need into .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000

# Loopback services for the test suite (override to point elsewhere).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/bookstore
TEST_REDIS_URL ?= redis://127.0.0.1:6379/1
TEST_READ_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/bookstore_read
TEST_ENV := DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) \
	DJANGO_SECRET_KEY=test-only-secret DJANGO_HTTPS=0 CQRS_SWEEP_SECONDS=1 \
	DJANGO_EMAIL_BACKEND=django.core.mail.backends.locmem.EmailBackend SERVE_MEDIA=1

.PHONY: install run test coverage test-faults test-separate-read-db lint format check-services clean bench bench-clean bench-quick bench-rebuild bench-waits bench-streams bench-replicas bench-catalog bench-cost

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

install: $(BIN)/.installed

# With nothing set: SQLite, tasks run eagerly in the web process, local-memory cache.
# With DATABASE_URL / READ_DATABASE_URL / REDIS_URL set: those, plus a Celery worker and beat.
run: install
	@export DJANGO_DEBUG=$${DJANGO_DEBUG:-1} DJANGO_HTTPS=$${DJANGO_HTTPS:-0}; \
	set -e; \
	$(BIN)/python manage.py migrate --no-input; \
	$(BIN)/python manage.py migrate --no-input --database read; \
	$(BIN)/python manage.py seed_demo --if-empty --books 300 --customers 30 --orders 150 --staff-password "$${STAFF_PASSWORD:-staff-demo-pass}"; \
	if [ -n "$$REDIS_URL$$CELERY_BROKER_URL" ]; then \
		echo "Starting a Celery worker and beat beside the web server."; \
		$(BIN)/celery -A config worker --beat -Q projections,side-effects,rebuilds --concurrency 2 \
			--loglevel INFO --schedule /tmp/bookstore-celerybeat-schedule & \
		worker=$$!; trap 'kill $$worker 2>/dev/null; wait $$worker' EXIT; \
	else \
		echo "No REDIS_URL: tasks run eagerly inside the web process (embedded mode)."; \
	fi; \
	echo "The shop: http://127.0.0.1:$(PORT)/  admin: /admin/ (staff / $${STAFF_PASSWORD:-staff-demo-pass})  API: /api/"; \
	$(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

check-services: install
	@$(TEST_ENV) $(BIN)/python -m tests.services

test: install check-services
	$(TEST_ENV) $(BIN)/pytest -m "not faults" $(PYTEST_ARGS)

# `make test` under coverage.py, ending with the coverage of apps/ and config/ by the test
# process (code that runs only in the servers and workers the tests start is not counted). Not
# in CI: tests/read and tests/cqrs took 182-187 s under it against 123 s without.
coverage: install check-services
	$(TEST_ENV) $(BIN)/pytest -m "not faults" --cov --cov-report=term:skip-covered $(PYTEST_ARGS)

# Fault injection, mixed load and hostile input (tests/faults/): stops Redis, kills workers and
# database connections. Figures are printed at the end and kept in test-artifacts/figures.json.
test-faults: install check-services
	$(TEST_ENV) $(BIN)/pytest -m faults $(PYTEST_ARGS)

# The same suite with the read models in their own PostgreSQL database. Left out, as where the
# read models live changes nothing they check: the browser journeys (they drive the same views
# and servers the API and page tests already run here), the write side's tests that touch no read
# model (its code cannot import one: the import contracts), hostile HTTP clients
# (tests/security), the README's walk-through, metrics, logs and the integration broker; and the
# search's two matrices of cases (54 of them, each on a catalog of its own), which check how
# pages and suggestions are ranked: the same file's other tests read tiers and suggestions from
# the read database.
SINGLE_DATABASE_ONLY := --ignore=tests/write/test_admin.py \
	--ignore=tests/write/test_catalog_commands.py --ignore=tests/write/test_command_permissions.py \
	--ignore=tests/write/test_orders.py --ignore=tests/security --ignore=tests/test_readme.py \
	--ignore=tests/test_metrics.py --ignore=tests/test_logs.py \
	--ignore=tests/test_integration_messages.py \
	--deselect=tests/read/test_search.py::test_every_page_of_a_search_is_the_slice_of_the_whole_ranking \
	--deselect=tests/read/test_search.py::test_suggested_titles_are_the_best_selling_that_contain_the_text
test-separate-read-db: install check-services
	$(TEST_ENV) READ_DATABASE_URL=$(TEST_READ_DATABASE_URL) $(BIN)/pytest -m "not faults and not browser" $(SINGLE_DATABASE_ONLY) $(PYTEST_ARGS)

# Benchmarks (not part of the tests): bench/run.py writes bench/REPORT.md and its plots.
$(BIN)/.bench-installed: $(BIN)/.installed
	$(BIN)/pip install --quiet -e ".[dev,bench]"
	command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk)
	touch $@

bench: $(BIN)/.bench-installed check-services
	$(BIN)/python -m bench.run

bench-quick: $(BIN)/.bench-installed check-services
	$(BIN)/python -m bench.run --quick

# Catalog reads during a rebuild of its listing: bench/REBUILD.md and bench/rebuild.png.
bench-rebuild: $(BIN)/.bench-installed check-services
	$(BIN)/python -m bench.rebuild

# Other reads while 50 clients wait for their own writes, ASGI against sync workers:
# bench/WAITS.md and bench/waits.png.
bench-waits: $(BIN)/.bench-installed check-services
	$(BIN)/python -m bench.waits

# Idle order event streams one ASGI worker holds, and its memory: bench/STREAMS.md.
bench-streams: $(BIN)/.bench-installed check-services
	$(BIN)/python -m bench.streams

# The same checks run before each commit once `$(BIN)/pre-commit install` has run
# (.pre-commit-config.yaml). mypy is strict on apps/cqrs (pyproject.toml). The last checks that
# every model change has its migration, with SQLite in memory: no database is needed.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	DJANGO_SECRET_KEY=type-checking-only $(BIN)/mypy
	DJANGO_SECRET_KEY=migrations-check-only SQLITE_PATH=:memory: \
		$(BIN)/python manage.py makemigrations --check --dry-run

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) db.sqlite3* staticfiles .pytest_cache .ruff_cache

# The benchmarks' databases, kept after each run to be looked at (bench/clean.py says why they
# should not stay).
bench-clean: $(BIN)/.bench-installed check-services
	$(BIN)/python -m bench.clean

# Catalog reads from the primary against a streaming replica, and the replica's delay under
# orders: bench/REPLICAS.md and bench/replicas.png.
bench-replicas: $(BIN)/.bench-installed check-services
	$(BIN)/python -m bench.replicas

# Lists, details, search and suggestions at 10k, 100k and 1M books: bench/CATALOG.md.
bench-catalog: $(BIN)/.bench-installed check-services
	$(BIN)/python -m bench.catalog $(BENCH_ARGS)

# CPU per order (web, worker, PostgreSQL), lag at 100 orders/s, replay: bench/COST.md.
bench-cost: $(BIN)/.bench-installed check-services
	$(BIN)/python -m bench.cost
