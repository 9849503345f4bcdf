"""The gateway (deploy/gateway.conf.template) in front of the pools of the web app, as compose
runs them: Debian's nginx with the repository's configuration, three gunicorn servers (sync
workers for commands and queries, uvicorn workers for the live pool). Each kind of request
reaches its pool, and one pool down does not take the others down."""

import json
import time
import urllib.error
import urllib.request

import pytest

from apps.cqrs import runtime
from apps.cqrs.consistency import HANDOFF_HEADER, WAITED_HEADER, head_position
from apps.cqrs.projectors import registry
from tests.conftest import wait_for
from tests.factories import stocked_book
from tests.processes import start_gateway, start_web, subprocess_env

pytestmark = [
    pytest.mark.faults,
    pytest.mark.django_db(transaction=True, databases=["default", "read"]),
]


def status(method: str, url: str, body: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0  # no answer


@pytest.fixture
def gateway(tmp_path, collected_static):
    env = subprocess_env()
    pools, nginx = {}, None
    try:
        for name in ("commands", "queries", "live"):
            pools[name] = start_web(
                env=env, logdir=tmp_path, name=name, workers=1, asgi=name == "live"
            )
        nginx = start_gateway(pools={name: [web] for name, web in pools.items()}, logdir=tmp_path)
        wait_for(lambda: status("GET", f"{nginx.url}/api/") == 200, timeout=20)
        yield nginx.url, pools
    finally:
        if nginx is not None:
            nginx.stop()
        for pool in pools.values():
            pool.stop()


def served_by(pools, method: str, path: str) -> set[str]:
    time.sleep(0.2)  # the access log line is written after the response
    return {name for name, pool in pools.items() if f'"{method} {path}' in pool.log()}


def test_commands_and_queries_reach_their_own_pools(gateway, report):
    url, pools = gateway
    routes = [
        ("GET", "/api/books/", None, "queries"),
        ("GET", "/books/", None, "queries"),
        ("POST", "/api/commands/place-order/", b'{"lines": []}', "commands"),
        ("POST", "/sign-up/", b"{}", "commands"),
        ("DELETE", "/api/books/1/", None, "commands"),
        # Waits reach the live pool, which answers a position beyond the head itself and hands
        # a read it waited for on to the query pool (the next test).
        ("GET", "/api/books/?min_position=1", None, "live", "queries"),
        ("GET", "/orders/1/?after=1", None, "live", "queries"),
        ("GET", "/api/orders/1/events/", None, "live"),
    ]
    for method, path, body, pool, *then in routes:
        answer = status(method, f"{url}{path}", body)
        assert answer < 500, (method, path, answer)
        served = served_by(pools, method, path)
        assert pool in served, (method, path, served)
        assert served <= {pool, *then}, (method, path, served)

    report("gateway", routes=len(routes), each_reached_its_pool=True)


def test_a_read_the_live_pool_waited_for_is_served_by_the_query_pool(gateway):
    url, pools = gateway
    book = stocked_book()
    runtime.catch_up(registry.get("catalog.book_listing"))
    path = f"/api/books/{book.pk}/?min_position={head_position()}"
    # What a client says of the hand-off is not the gateway's word: it is replaced.
    forged = {HANDOFF_HEADER: "/admin", WAITED_HEADER: "1"}
    request = urllib.request.Request(f"{url}{path}", headers=forged)
    with urllib.request.urlopen(request, timeout=10) as response:
        body, headers = json.loads(response.read()), response.headers

    assert body["id"] == book.pk
    assert headers["X-Read-Consistency"] == "fresh"
    assert "X-Accel-Redirect" not in headers
    assert served_by(pools, "GET", path) == {"live", "queries"}

    # With the query pool down, the live pool serves what it waited for itself.
    pools["queries"].stop()
    with urllib.request.urlopen(f"{url}{path}", timeout=10) as response:
        assert json.loads(response.read())["id"] == book.pk
        assert response.headers["X-Read-Consistency"] == "fresh"


def test_the_catalog_serves_with_the_command_pool_down(gateway):
    url, pools = gateway
    pools["commands"].stop()
    assert status("GET", f"{url}/api/books/") == 200
    assert status("GET", f"{url}/books/") == 200
    assert status("POST", f"{url}/api/commands/place-order/", b"{}") == 502


def test_the_catalog_serves_with_the_live_pool_down(gateway):
    url, pools = gateway
    pools["live"].stop()
    assert status("GET", f"{url}/api/books/") == 200
    assert status("GET", f"{url}/api/books/?min_position=1") == 502


def test_commands_are_taken_with_the_query_pool_down(gateway):
    url, pools = gateway
    pools["queries"].stop()
    assert status("POST", f"{url}/api/commands/place-order/", b"{}") == 403  # DRF: sign in
    assert status("GET", f"{url}/api/books/") == 502
