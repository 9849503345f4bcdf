"""The production shape without Docker, as the README's "Production without Docker" section
sets it up: DEBUG off, static files collected and served by WhiteNoise, gunicorn with sync
workers and a live pool of uvicorn workers behind the nginx gateway, a worker with beat. Every
page, the admin's log-in and the API docs load with their static files through the gateway: no
error; a read that waits for a position and an order's event stream reach the live pool."""

import re
import urllib.request

import pytest

from tests.conftest import wait_until_caught_up
from tests.factories import stocked_book
from tests.faults.conftest import call
from tests.processes import start_gateway, start_web

pytestmark = [
    pytest.mark.faults,
    pytest.mark.django_db(transaction=True, databases=["default", "read"]),
]
PAGES = ["/", "/books/", "/cart/", "/sign-up/", "/log-in/", "/password-reset/",
         "/admin/login/", "/api/", "/api/docs/", "/healthz"]  # fmt: skip
STATIC = re.compile(r"""(?:src|href)="(/static/[^"]+)\"""")


@pytest.fixture
def gateway(stack, tmp_path):
    live = start_web(env=stack.env, logdir=tmp_path, name="live", workers=1, asgi=True)
    nginx = start_gateway(
        pools={"commands": [stack.web], "queries": [stack.web], "live": [live]}, logdir=tmp_path
    )
    nginx.live = live
    yield nginx
    nginx.stop()
    live.stop()


def test_every_page_and_its_static_files_load_with_debug_off(stack, gateway, report):
    book = stocked_book(title="Served")
    wait_until_caught_up()
    pages = [*PAGES, f"/books/{book.pk}/"]
    statics = set()
    for path in pages:
        with urllib.request.urlopen(f"{gateway.url}{path}", timeout=10) as response:
            assert response.status == 200, path
            statics |= set(STATIC.findall(response.read().decode()))
    for path in sorted(statics):
        status, _ = call("GET", f"{gateway.url}{path}")
        assert status == 200, path
    status, body = call("GET", f"{gateway.url}/api/books/{book.pk}/?min_position=1")
    assert (status, body["title"]) == (200, "Served")
    assert f"/api/books/{book.pk}/?min_position=1" in gateway.live.log()
    assert "Traceback" not in stack.web.log() + gateway.live.log()
    report("production shape", pages=len(pages), static_files=len(statics), errors=0)
