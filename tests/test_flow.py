"""The whole path on the real parts: command, event log, Celery worker, read model, query."""

import json
import urllib.request

import pytest
from rest_framework.authtoken.models import Token

from apps.cqrs.dispatch import wake_projectors_after_commit
from apps.cqrs.signals import event_recorded
from apps.read.catalog.models import BookListing
from tests.conftest import wait_for
from tests.factories import StaffFactory, add_author, add_book

pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True, databases=["default", "read"]),
]


def http(method: str, url: str, *, token: str | None = None, body: dict | None = None):
    request = urllib.request.Request(url, method=method)
    request.add_header("Accept", "application/json")
    if token:
        request.add_header("Authorization", f"Token {token}")
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, data=data, timeout=10) as response:
        return response.status, dict(response.headers), json.loads(response.read())


def test_add_book_over_http_then_the_books_endpoint_shows_it(live_server, celery_worker):
    token = Token.objects.create(user=StaffFactory()).key
    status, _, author = http(
        "POST",
        f"{live_server.url}/api/commands/add-author/",
        token=token,
        body={"name": "N. K. Jemisin"},
    )
    assert status == 201
    status, headers, created = http(
        "POST",
        f"{live_server.url}/api/commands/add-book/",
        token=token,
        body={
            "title": "The Fifth Season",
            "isbn": "978-0-316-22929-6",
            "author_ids": [author["author_id"]],
            "price": "17.99",
            "format": "paperback",
        },
    )
    assert status == 201
    assert int(headers["X-Event-Position"]) == created["position"] > author["position"]

    def book_is_listed():
        """the new book appears in GET /api/books/"""
        _, _, page = http("GET", f"{live_server.url}/api/books/")
        return next((b for b in page["results"] if b["id"] == created["book_id"]), None)

    listed = wait_for(book_is_listed, timeout=10)
    assert listed["title"] == "The Fifth Season"
    assert listed["isbn"] == "9780316229296"
    assert listed["price"] == "17.99"
    assert listed["authors"] == [{"id": author["author_id"], "name": "N. K. Jemisin"}]
    assert listed["position"] == created["position"]


def test_the_sweep_delivers_events_whose_wake_up_was_lost(celery_worker):
    # Given commands whose on-commit wake-up is dropped, as when the process dies after commit
    event_recorded.disconnect(
        wake_projectors_after_commit, dispatch_uid="cqrs.wake_projectors_after_commit"
    )
    try:
        author = add_author()
        books = [add_book(title=f"Lost wake-up {i}", authors=[author]) for i in range(5)]
    finally:
        event_recorded.connect(
            wake_projectors_after_commit, dispatch_uid="cqrs.wake_projectors_after_commit"
        )

    # Then the beat sweep (every second in the tests) still brings the read model up to date
    def all_listed():
        """every book of the lost wake-ups is in the read model"""
        return BookListing.objects.filter(book_id__in=[b.pk for b in books]).count() == 5

    wait_for(all_listed, timeout=15)
