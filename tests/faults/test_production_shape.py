"""The production shape without Docker, as the README's "Production without Docker" section
sets it up: DEBUG off, static files collected and served by WhiteNoise, gunicorn, a worker with
beat. Every page, the admin's log-in and the API docs load with their static files: no error."""

import re
import urllib.request

import pytest

from tests.factories import stocked_book
from tests.faults.conftest import call, wait_until_caught_up

pytestmark = [
    pytest.mark.faults,
    pytest.mark.django_db(transaction=True, databases=["default", "read"]),
]
PAGES = ["/", "/books/", "/cart/", "/sign-up/", "/log-in/", "/password-reset/",
         "/admin/login/", "/api/", "/api/docs/", "/healthz"]  # fmt: skip
STATIC = re.compile(r"""(?:src|href)="(/static/[^"]+)\"""")


def test_every_page_and_its_static_files_load_with_debug_off(stack, report):
    book = stocked_book(title="Served")
    wait_until_caught_up()
    pages = [*PAGES, f"/books/{book.pk}/"]
    statics = set()
    for path in pages:
        with urllib.request.urlopen(f"{stack.url}{path}", timeout=10) as response:
            assert response.status == 200, path
            statics |= set(STATIC.findall(response.read().decode()))
    for path in sorted(statics):
        status, _ = call("GET", f"{stack.url}{path}")
        assert status == 200, path
    assert "Traceback" not in stack.web.log()
    report("production shape", pages=len(pages), static_files=len(statics), errors=0)
