"""Fault tests: real PostgreSQL, a Redis of their own that they stop and start, and gunicorn
and Celery worker processes that they kill. `make test-faults` runs them."""

import json
import threading
import time
import urllib.error
import urllib.request

import psycopg
import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connections
from django.db.models.fields import AutoFieldMixin

from tests.processes import RedisServer, start_web, start_worker, subprocess_env


@pytest.fixture
def private_redis(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


class Stack:
    """gunicorn and a Celery worker with beat, both on `private_redis` and the test databases.

    Workers are supervised as compose's `restart: unless-stopped` does: one that exits by
    itself is started again (`restarts` counts them). Celery's Redis transport can crash the
    worker when the broker goes away while a message is being acknowledged ("Unrecoverable
    error: AttributeError ... hostname" in kombu); production relies on the restart too."""

    def __init__(self, redis: RedisServer, logdir) -> None:
        self.redis = redis
        self.logdir = logdir
        # These tests measure the system, not the per-customer throttle; an event stream ends
        # once it has sent what there is (clients reconnect with Last-Event-ID), so that a
        # fuzzer's reads of it end.
        self.env = {
            **subprocess_env(redis_url=redis.url),
            "CUSTOMER_COMMAND_RATE": "100000/min",
            "CQRS_STREAM_SECONDS": "0",
        }
        self.web = start_web(env=self.env, logdir=logdir)
        self.workers = []
        self.restarts = 0
        self._lock = threading.Lock()
        self._supervising = True
        self.add_worker("worker", beat=True)
        threading.Thread(target=self._supervise, daemon=True).start()

    @property
    def url(self) -> str:
        return self.web.url

    def add_worker(self, name: str, *, beat: bool = False):
        worker = start_worker(env=self.env, logdir=self.logdir, name=name, beat=beat)
        worker.beat = beat
        with self._lock:
            self.workers.append(worker)
        return worker

    def _supervise(self) -> None:
        while self._supervising:
            with self._lock:
                exited = [w for w in self.workers if not w.stopped and w.process.poll() is not None]
                for worker in exited:
                    try:
                        restarted = start_worker(
                            env=self.env, logdir=self.logdir, name=f"{worker.name}-restarted",
                            beat=worker.beat,
                        )  # fmt: skip
                    except RuntimeError:
                        continue  # e.g. the broker is still away: try again
                    worker.stopped = True
                    restarted.beat = worker.beat
                    self.workers.append(restarted)
                    self.restarts += 1
            time.sleep(0.5)

    def stop_workers(self) -> None:
        """Stop projecting, e.g. before comparing the read models with a replay."""
        self._supervising = False
        with self._lock:
            for worker in self.workers:
                worker.stop()

    def stop(self) -> None:
        self.stop_workers()
        self.web.stop()


@pytest.fixture
def stack(private_redis, tmp_path, collected_static):
    running = Stack(private_redis, tmp_path)
    yield running
    running.stop()


def call(method: str, url: str, *, token: str | None = None, body: dict | None = None,
         headers: dict | None = None, timeout: float = 30) -> tuple[int, dict]:  # fmt: skip
    """One HTTP request; returns (status, JSON body or {}) for every status, 5xx included."""
    request = urllib.request.Request(url, method=method)
    request.add_header("Accept", "application/json")
    if token:
        request.add_header("Authorization", f"Token {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, data=data, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw) if raw else {}
    except ValueError:
        return status, {"body": raw[:200].decode(errors="replace")}


def read_model_rows() -> dict[str, set[str]]:
    """Every row of every read model, as text (rows hold JSON lists), without surrogate ids,
    which a replay numbers afresh; checkpoints excluded."""
    rows = {}
    for config in apps.get_app_configs():
        if config.name.startswith("apps.read."):
            for model in config.get_models():
                fields = [
                    f.attname
                    for f in model._meta.concrete_fields
                    if not isinstance(f, AutoFieldMixin)
                ]
                rows[model._meta.label] = {repr(r) for r in model.objects.values_list(*fields)}
    return rows


def differences_from_a_fresh_rebuild() -> dict[str, int]:
    """Replays the whole log into empty read models and counts, per model, the rows that differ
    from what live projection had built (0 everywhere when nothing was lost or applied twice)."""
    live = read_model_rows()
    call_command("rebuild_read_models", verbosity=0)
    rebuilt = read_model_rows()
    return {
        label: len(live[label] ^ rebuilt[label]) for label in live if live[label] != rebuilt[label]
    }


def set_databases_reachable(reachable: bool) -> None:
    """Open or close the test databases to new connections; closing also ends every session on
    them except this test's own, as a restart of the server would."""
    names = {connections[alias].settings_dict["NAME"] for alias in ("default", "read")}
    own = {connections[alias].cursor().connection.info.backend_pid for alias in ("default", "read")}
    settings = connections["default"].settings_dict
    with psycopg.connect(
        host=settings["HOST"], port=settings["PORT"] or 5432, user=settings["USER"],
        dbname="postgres", autocommit=True,
    ) as admin:  # fmt: skip
        for name in names:
            admin.execute(
                f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {str(reachable).lower()}'
            )
            if not reachable:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND NOT pid = ANY(%s)",
                    [name, list(own)],
                )
