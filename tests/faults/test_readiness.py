"""/readyz against a served stack whose dependencies are broken for real: the stack's Redis
(cache and Celery broker) stopped, the databases closed to connections. It names what is down,
answers 503, and 200 again once it is back; /healthz answers 200 throughout."""

import pytest

from tests.conftest import wait_for
from tests.faults.conftest import call, set_databases_reachable

pytestmark = [
    pytest.mark.faults,
    pytest.mark.django_db(transaction=True, databases=["default", "read"]),
]


def ready(stack) -> tuple[int, dict]:
    status, body = call("GET", f"{stack.url}/readyz", timeout=10)
    return status, body.get("checks", {})


def test_readiness_names_each_dependency_that_is_down(stack, private_redis, report):
    wait_for(lambda: ready(stack)[0] == 200, timeout=30)

    private_redis.stop()
    status, checks = ready(stack)
    assert status == 503
    assert (checks["cache"], checks["broker"]) == ("unavailable", "unavailable")
    assert checks["write_database"] == "ok"
    assert call("GET", f"{stack.url}/healthz")[0] == 200
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
    finally:
        set_databases_reachable(True)
    wait_for(lambda: ready(stack)[0] == 200, timeout=30)
    report("readiness", redis_down="cache, broker named; 503", databases_down="both named; 503")
