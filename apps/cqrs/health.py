"""Liveness and readiness, for load balancers, orchestrators and compose.

- `GET /healthz`: the process answers. No I/O, so a slow dependency never gets a healthy
  process restarted.
- `GET /readyz`: the process can serve: the write and read databases answer, the cache and the
  Celery broker answer (and the integration broker, when one is set), and no projector is
  stopped at a failure or further behind than READY_MAX_LAG_SECONDS. 200 when all hold, else 503,
  with each check's state in JSON. It names what fails, never why (no error text for anonymous
  callers); each check is cheap: one query or round trip, with one-second time-outs.

django-health-check was weighed: its database and cache checks fit, but the check that matters
most here is the projectors' lag, which it does not know, and its output is HTML or a flat JSON
without a readiness/liveness split.
"""

from django.conf import settings
from django.db import connections
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from apps.cqrs import replicas
from apps.cqrs.models import Checkpoint, DomainEvent
from apps.cqrs.projectors import Partition, Projector, registry

TIMEOUT_SECONDS = 1


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks = {
        "write_database": _database("default"),
        "read_database": _database("read"),
        "cache": _redis(getattr(settings, "CACHE_URL", "")),
        "broker": _broker(settings.CELERY_BROKER_URL),
        "projectors": _projectors(),
    }
    if settings.INTEGRATION_BROKER_URL:
        checks["integration_broker"] = _broker(settings.INTEGRATION_BROKER_URL)
    ready = all(state == "ok" for state in checks.values())
    body: dict[str, object] = {"status": "ok" if ready else "unavailable", "checks": checks}
    if replicas.aliases():
        # Reported, not required: without a replica, queries read the primary.
        body["replicas"] = replicas.report()
    return JsonResponse(body, status=200 if ready else 503)


def _database(alias: str) -> str:
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        connections[alias].close()  # a broken connection is not kept for the next request
        return "unavailable"
    return "ok"


def _redis(url: str) -> str:
    if not url:
        return "ok"  # the embedded default: a local-memory cache
    import redis

    try:
        client = redis.Redis.from_url(
            url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
        )
        client.ping()
        client.close()
    except Exception:
        return "unavailable"
    return "ok"


def _broker(url: str) -> str:
    if url.startswith("memory://"):
        return "ok"  # the embedded default: tasks run eagerly
    if url.startswith(("redis://", "rediss://")):
        return _redis(url)
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=TIMEOUT_SECONDS) as connection:
            connection.ensure_connection(max_retries=1, timeout=TIMEOUT_SECONDS)
    except Exception:
        return "unavailable"
    return "ok"


def _projectors() -> str:
    """'ok', or the partitions that are stopped at a failure or lag too far, named."""
    try:
        problems = []
        now = timezone.now()
        by_model: dict[type[Checkpoint], list[Projector]] = {}
        for projector in registry.all():
            by_model.setdefault(projector.checkpoint_model, []).append(projector)
        for model, projectors in by_model.items():
            names = {part.name: part for p in projectors for part in p.partition_list()}
            database = projectors[0].database
            for checkpoint in model._default_manager.using(database).filter(name__in=list(names)):
                part: Partition = names[checkpoint.name]
                if checkpoint.failed_position is not None:
                    problems.append(f"{part.name} failed")
                    continue
                oldest = (
                    DomainEvent.objects.using("default")
                    .filter(
                        position__gt=checkpoint.position,
                        event_type__in=part.projector.handles,
                    )
                    .order_by("position")
                    .values_list("recorded_at", flat=True)
                    .first()
                )
                lag = (now - oldest).total_seconds() if oldest else 0.0
                if lag > settings.READY_MAX_LAG_SECONDS:
                    problems.append(f"{part.name} {lag:.0f}s behind")
    except Exception:
        return "unavailable"
    return "ok" if not problems else "; ".join(sorted(problems))
