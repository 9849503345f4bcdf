"""Prometheus metrics: what each process counts, and what `GET /metrics` reports.

Counters and histograms are kept by the process that observes them: requests, commands, events
recorded, read-your-writes waits, cache lookups (web); events applied, batch times and failures
(workers). gunicorn and Celery's prefork pool run several processes, so prometheus_client runs
in its multiprocess mode: each process writes its values to files in PROMETHEUS_MULTIPROC_DIR,
and a scrape adds them up. `gunicorn.conf.py` and `config/celery.py` give each server a fresh
directory when none is set; the variable must be set before prometheus_client is imported,
which is why it is done there and not in settings.

The projectors' checkpoints, lag and failures are not counted by anyone: a scrape reads them
from the checkpoints (`ProjectionCollector`), so they are right whichever process moved them.

Labels hold only bounded values (route patterns, command and projector names, exception class
names), never a URL or an id: a hostile client cannot grow the series.
"""

import hmac
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from apps.cqrs.signals import event_recorded

if TYPE_CHECKING:
    from apps.cqrs.models import DomainEvent

logger = logging.getLogger(__name__)
NAMESPACE = "bookstore"
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

http_requests = Counter(
    "http_requests", "HTTP requests answered.", ["view", "method", "status"], namespace=NAMESPACE
)
http_duration = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request, in the Django process.",
    ["view", "method"],
    namespace=NAMESPACE,
)
commands = Counter(
    "commands", "Commands run, by outcome: ok or the error's class.", ["command", "outcome"],
    namespace=NAMESPACE,
)  # fmt: skip
command_duration = Histogram(
    "command_duration_seconds", "Time a command took, its transaction included.", ["command"],
    namespace=NAMESPACE,
)  # fmt: skip
events_recorded = Counter(
    "events_recorded", "Events appended to the log (committed).", ["event_type"],
    namespace=NAMESPACE,
)  # fmt: skip
events_applied = Counter(
    "events_applied", "Events applied by a projector or subscriber.", ["projector"],
    namespace=NAMESPACE,
)  # fmt: skip
batch_duration = Histogram(
    "projection_batch_duration_seconds", "Time a projector's batch took, commit included.",
    ["projector"], namespace=NAMESPACE,
)  # fmt: skip
projection_failures = Counter(
    "projection_failures", "Events a projector failed to apply (each attempt).", ["projector"],
    namespace=NAMESPACE,
)  # fmt: skip
read_waits = Counter(
    "read_waits",
    "Reads sent with a position: fresh (reached in time) or stale (the bound ran out).",
    ["outcome"],
    namespace=NAMESPACE,
)
read_wait_duration = Histogram(
    "read_wait_duration_seconds",
    "Time reads sent with a position waited for the projectors.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
    namespace=NAMESPACE,
)
replica_up = Gauge(
    "replica_up",
    "1 while a read replica is in rotation (answers, and lags less than the bound), else 0.",
    ["replica"],
    namespace=NAMESPACE,
    multiprocess_mode="mostrecent",
)
replica_fallbacks = Counter(
    "replica_fallbacks",
    "Reads with a position the replica had not reached in time, answered from the primary.",
    namespace=NAMESPACE,
)
cache_lookups = Counter(
    "cache_lookups", "Read-model cache lookups.", ["entry", "result"], namespace=NAMESPACE
)


def observe_read_wait(*, reached: bool, seconds: float) -> None:
    read_waits.labels("fresh" if reached else "stale").inc()
    read_wait_duration.observe(seconds)


def observe_cache(entry: str, hit: bool) -> None:
    cache_lookups.labels(entry, "hit" if hit else "miss").inc()


class RequestMetricsMiddleware:
    """Counts and times every request by the name of the view its URL resolved to (`book-list`,
    `storefront:book`), never by its URL; one that resolved to none counts as `unmatched`."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = (match.view_name or match.route) if match is not None else "unmatched"
        method = request.method if request.method in METHODS else "other"
        http_requests.labels(view, method, str(response.status_code)).inc()
        http_duration.labels(view, method).observe(time.perf_counter() - started)
        return response


class ProjectionCollector(Collector):
    """Per projector partition, read at scrape time from the checkpoints."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from apps.cqrs.runtime import status  # the registry is complete once apps are ready

        labels = ["projector", "partition"]
        checkpoint = GaugeMetricFamily(
            f"{NAMESPACE}_projector_checkpoint", "Position the partition has passed.",
            labels=labels,
        )  # fmt: skip
        lag_events = GaugeMetricFamily(
            f"{NAMESPACE}_projector_lag_events", "Events of the partition not yet applied.",
            labels=labels,
        )  # fmt: skip
        lag_seconds = GaugeMetricFamily(
            f"{NAMESPACE}_projector_lag_seconds",
            "Age of the oldest event of the partition not yet applied (0 when none).",
            labels=labels,
        )
        failed = GaugeMetricFamily(
            f"{NAMESPACE}_projector_failed",
            "1 when the partition is stopped at an event that fails, else 0.",
            labels=labels,
        )
        parked = GaugeMetricFamily(
            f"{NAMESPACE}_projector_parked_keys", "Keys parked at a failing event.",
            labels=labels,
        )  # fmt: skip
        head = GaugeMetricFamily(f"{NAMESPACE}_log_head", "Newest position in the event log.")
        up = GaugeMetricFamily(
            f"{NAMESPACE}_projections_up", "1 when the checkpoints could be read for this scrape."
        )
        try:
            rows = status()
        except Exception as exc:  # a database away: the process's own counters still serve
            logger.warning("Metrics: the checkpoints could not be read: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        for row in rows:
            values = [row.projector, row.name]
            checkpoint.add_metric(values, row.position)
            lag_events.add_metric(values, row.lag_events)
            lag_seconds.add_metric(values, row.lag_seconds)
            failed.add_metric(values, 1 if row.failed_position is not None else 0)
            parked.add_metric(values, len(row.parked))
        head.add_metric([], rows[0].head if rows else 0)
        yield from (up, checkpoint, lag_events, lag_seconds, failed, parked, head)


def process_registry() -> CollectorRegistry:
    """Every process's counters when several share a directory, else this process's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """`GET /metrics`. With METRICS_TOKEN set, only for `Authorization: Bearer <token>`."""
    token = settings.METRICS_TOKEN
    offered = request.headers.get("Authorization", "").encode()
    if token and not hmac.compare_digest(offered, f"Bearer {token}".encode()):
        return HttpResponse("Unauthorized\n", status=401, content_type="text/plain")
    body = generate_latest(process_registry()) + generate_latest(_projections)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


_projections = CollectorRegistry(auto_describe=False)
_projections.register(ProjectionCollector())


@receiver(event_recorded, dispatch_uid="cqrs.count_recorded_events")
def count_recorded_events(
    sender: object, events: list["DomainEvent"], using: str, **kwargs: Any
) -> None:
    def count() -> None:
        for event in events:
            events_recorded.labels(event.event_type).inc()

    transaction.on_commit(count, using=using)
