"""GET /metrics (apps/cqrs/metrics.py): every process of a server counted, whichever answers."""

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.authtoken.models import Token

from apps.cqrs.models import DomainEvent
from apps.cqrs.projectors import registry
from tests.conftest import wait_for
from tests.factories import StaffFactory, add_book
from tests.processes import free_port, start_web, start_worker, subprocess_env


def samples(url: str, headers: dict | None = None) -> dict[tuple, float]:
    """{(name, sorted labels): value} of a scrape."""
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def get(url: str, headers: dict | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def post(url: str, token: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.worker
@pytest.mark.django_db(transaction=True, databases=["default", "read"])
def test_metrics_add_up_every_web_and_worker_process(tmp_path):
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    web_dir, worker_dir = tmp_path / "web-metrics", tmp_path / "worker-metrics"
    env = subprocess_env()
    worker_port = free_port()
    worker = start_worker(
        env={**env, "PROMETHEUS_MULTIPROC_DIR": str(worker_dir),
             "CELERY_METRICS_PORT": str(worker_port)},
        logdir=tmp_path, name="metrics-worker", concurrency=2, beat=False,
    )  # fmt: skip
    web = start_web(env={**env, "PROMETHEUS_MULTIPROC_DIR": str(web_dir)}, logdir=tmp_path)
    try:
        token = Token.objects.create(user=StaffFactory()).key
        author = post(f"{web.url}/api/commands/add-author/", token, {"name": "Octavia Butler"})
        books = [add_book(title=f"Book {n}") for n in range(6)]  # events the worker applies

        # 40 reads from 8 threads: both sync workers answer some
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda _: get(f"{web.url}/api/books/"), range(40)))
        assert statuses == [200] * 40
        assert get(f"{web.url}/api/no-such-thing/123/") == 404
        # A read that waits for its own write, answered fresh once the worker has projected it
        position = str(author["position"])
        assert get(f"{web.url}/api/books/?min_position={position}") == 200

        scrape = samples(f"{web.url}/metrics")
        books_route = (("method", "GET"), ("status", "200"), ("view", "book-list"))
        # 40 + the read with a position; the start-up probe asked for /api/, not this view
        assert scrape["bookstore_http_requests_total", books_route] == 41
        unmatched = (("method", "GET"), ("status", "404"), ("view", "unmatched"))
        assert scrape["bookstore_http_requests_total", unmatched] == 1
        assert scrape["bookstore_commands_total",
                      (("command", "catalog.author_add"), ("outcome", "ok"))] == 1  # fmt: skip
        assert scrape["bookstore_events_recorded_total", (("event_type", "AuthorAdded"),)] == 1
        assert scrape["bookstore_read_waits_total", (("outcome", "fresh"),)] == 1
        assert scrape["bookstore_projections_up", ()] == 1
        listing = (("partition", "catalog.book_listing"), ("projector", "catalog.book_listing"))
        assert ("bookstore_projector_lag_events", listing) in scrape
        assert scrape["bookstore_log_head", ()] == DomainEvent.objects.latest("position").position
        # Each sync worker kept its own file: the scrape added them up
        assert len(list(web_dir.glob("counter_*.db"))) >= 2

        # The worker's pool: every event the listing handles, applied once, whichever process
        handled = DomainEvent.objects.filter(
            event_type__in=registry.get("catalog.book_listing").handles
        ).count()
        assert handled >= len(books)
        listing_applied = (
            "bookstore_events_applied_total",
            (("projector", "catalog.book_listing"),),
        )

        def all_applied():
            """the worker's metrics count every listing event applied"""
            return (
                samples(f"http://127.0.0.1:{worker_port}/metrics").get(listing_applied) == handled
            )

        wait_for(all_applied, timeout=20)
        assert len(list(worker_dir.glob("counter_*.db"))) >= 2
    finally:
        web.stop()
        worker.stop()


@pytest.mark.django_db(databases=["default", "read"])
def test_metrics_ask_for_the_token_when_one_is_set(client, settings):
    settings.METRICS_TOKEN = "s3cret-metrics"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-metrics")
    assert response.status_code == 200
    assert b"bookstore_projections_up 1.0" in response.content
