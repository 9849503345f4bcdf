import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import redis
from django.conf import settings
from django.db import connections
from django.db.backends.postgresql.operations import DatabaseOperations

from apps.cqrs.models import DomainEvent
from tests.processes import start_worker, subprocess_env


def pytest_configure(config):
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.exit(
            "The suite runs on PostgreSQL and Redis: run it with `make test`, or set "
            "DATABASE_URL and REDIS_URL yourself.",
            returncode=2,
        )


@pytest.fixture(scope="session", autouse=True)
def _no_session_left_on_the_test_databases(django_db_setup, django_db_blocker):
    """Before the test databases are dropped, end any session still attached to them.

    Connections opened inside Playwright's event-loop context (tests/browser/) belong to a
    context Django never closes, and one idle session is enough to stop DROP DATABASE.
    """
    yield
    with django_db_blocker.unblock():
        connections.close_all()
        seen = set()
        for alias in ("default", "read"):
            connection = connections[alias]
            name = connection.settings_dict["NAME"]
            # A run of tests that need no database sets none up: its name is still the real one.
            if name in seen or not name.startswith("test_"):
                continue
            seen.add(name)
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            connection.close()


@pytest.fixture(scope="session", autouse=True)
def _empty_test_redis():
    # Ids start again with every new test database: entries of an earlier run must go.
    redis.Redis.from_url(settings.CACHES["default"]["LOCATION"]).flushdb()


@pytest.fixture(scope="session", autouse=True)
def _flush_by_delete():
    """Transactional tests empty the tables with DELETE rather than TRUNCATE.

    TRUNCATE gives each of the 40 tables and their indexes new files: Django's flush took
    0.29-0.31 s, 0.23 s of it the TRUNCATE, where DELETEs of the rows a test leaves took
    0.05 s (psql), and two in five tests flush. Foreign keys are checked at
    the flush's commit, so the order of the DELETEs does not matter. The event log refuses
    DELETE (its append-only trigger): it alone is truncated.
    """
    log = DomainEvent._meta.db_table
    truncate = DatabaseOperations.sql_flush

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        if reset_sequences or allow_cascade:
            return truncate(
                self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
            )
        statements = [f"DELETE FROM {self.quote_name(table)};" for table in tables if table != log]
        if log in tables:
            statements.append(f"TRUNCATE {self.quote_name(log)};")
        return statements

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DatabaseOperations, "sql_flush", sql_flush)
        yield


@pytest.fixture(autouse=True)
def _test_only_settings(settings):
    # The only differences from production: a fast hasher, and static files read from the
    # source folders because tests do not run collectstatic.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def celery_worker(django_db_setup, tmp_path_factory):
    """A real `celery worker --beat` process on the test databases and the test Redis.

    Function-scoped so that tests without it run with no projector working in the background.
    The broker's queues are emptied first: wake-ups queued by earlier tests, which had no
    worker, would only be noise.
    """
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    logdir = tmp_path_factory.mktemp("worker")
    worker = start_worker(env=subprocess_env(), logdir=logdir, name="test")
    try:
        yield worker.process
    finally:
        exited = worker.process.poll()
        # Killed, not stopped: the test is over, and a warm shutdown waits 1.5 s on the pool.
        worker.kill()
        if exited not in (None, 0, -15):
            print(f"Celery worker log ({worker.log_path}):\n{worker.log()[-4000:]}")


@pytest.fixture(scope="session")
def collected_static():
    """The static files gunicorn serves in production (whitenoise's manifest), collected once."""
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        env={**os.environ, "DJANGO_SECRET_KEY": "collectstatic"}, check=True, timeout=120,
    )  # fmt: skip


def another_session(alias: str, **params) -> psycopg.Connection:
    """A connection of its own to the database behind `alias` (another process, in effect),
    with `params` changed (say, `dbname`)."""
    dsn = dict(connections[alias].get_connection_params())
    dsn.pop("cursor_factory", None)  # Django's, not psycopg's
    return psycopg.connect(**(dsn | params))


def wait_for(predicate, *, timeout: float = 10.0, interval: float = 0.05):
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(
                f"Waited {timeout}s and it did not happen: {predicate.__doc__ or predicate}"
            )
        time.sleep(interval)


def wait_until_caught_up(*, timeout: float = 60) -> float:
    """Wait until every projector and subscriber has passed the head of the log; returns the
    seconds it took."""
    from apps.cqrs import runtime  # Django must be set up first

    started = time.monotonic()

    def caught_up():
        """every projector has applied the whole log"""
        return all(row.lag_events == 0 for row in runtime.status())

    wait_for(caught_up, timeout=timeout, interval=0.1)
    return time.monotonic() - started


ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
FIGURES: dict[str, dict] = {}


@pytest.fixture
def report():
    """`report(name, **figures)` keeps a test's figures (fault, load and security tests) for the
    summary at the end of the run and for test-artifacts/figures.json."""

    def keep(name: str, **figures) -> None:
        FIGURES[name] = figures

    return keep


def pytest_terminal_summary(terminalreporter):
    if not FIGURES:
        return
    terminalreporter.section("fault and load figures")
    for name, figures in FIGURES.items():
        line = ", ".join(f"{key}={value}" for key, value in figures.items())
        terminalreporter.write_line(f"{name}: {line}")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "figures.json").write_text(json.dumps(FIGURES, indent=2) + "\n")
