"""/readyz against a served stack whose dependencies are broken for real: the stack's Redis
(cache and Celery broker) stopped, the databases closed to connections. It names what is down,
answers 503, and 200 again once it is back; /healthz answers 200 throughout, and /metrics too,
saying whether it could read the projectors' checkpoints."""

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import wait_for
from tests.faults.conftest import call, set_databases_reachable

pytestmark = [
    pytest.mark.faults,
    pytest.mark.django_db(transaction=True, databases=["default", "read"]),
]


def ready(stack) -> tuple[int, dict]:
    status, body = call("GET", f"{stack.url}/readyz", timeout=10)
    return status, body.get("checks", {})


def metrics(stack) -> dict[str, float]:
    """Samples without labels, and projector lag in events summed, from a scrape."""
    with urllib.request.urlopen(f"{stack.url}/metrics", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = sample.name if not sample.labels else sample.name + "{}"
            found[key] = found.get(key, 0) + sample.value
    return found


def test_readiness_names_each_dependency_that_is_down(stack, private_redis, report):
    wait_for(lambda: ready(stack)[0] == 200, timeout=30)

    healthy = metrics(stack)
    assert healthy["bookstore_projections_up"] == 1

    private_redis.stop()
    status, checks = ready(stack)
    assert status == 503
    assert (checks["cache"], checks["broker"]) == ("unavailable", "unavailable")
    assert checks["write_database"] == "ok"
    assert call("GET", f"{stack.url}/healthz")[0] == 200
    without_redis = metrics(stack)
    assert without_redis["bookstore_projections_up"] == 1
    assert without_redis["bookstore_log_head"] == healthy["bookstore_log_head"]
    private_redis.start()
    wait_for(lambda: ready(stack)[0] == 200, timeout=30)

    set_databases_reachable(False)
    try:
        status, checks = ready(stack)
        assert status == 503
        assert (checks["write_database"], checks["read_database"]) == (
            "unavailable",
            "unavailable",
        )
        assert checks["cache"] == "ok"
        assert call("GET", f"{stack.url}/healthz")[0] == 200
        # The process's own counters still serve; the checkpoints cannot be read
        without_databases = metrics(stack)
        assert without_databases["bookstore_projections_up"] == 0
        assert "bookstore_log_head" not in without_databases
        assert without_databases["bookstore_http_requests_total{}"] > 0
    finally:
        set_databases_reachable(True)
    wait_for(lambda: ready(stack)[0] == 200, timeout=30)
    report(
        "readiness",
        redis_down="cache, broker named; 503; /metrics 200, projections_up 1",
        databases_down="both named; 503; /metrics 200, projections_up 0",
    )
