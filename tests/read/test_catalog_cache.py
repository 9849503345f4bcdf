from decimal import Decimal

import pytest
from django.core.cache import cache as django_cache
from django.core.management import call_command
from django.db import connections
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from apps.cqrs import runtime
from apps.cqrs.consistency import head_position
from apps.cqrs.projectors import registry
from apps.read.catalog import cache, selectors
from apps.write.catalog import services
from tests.factories import add_book

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "read"])


def project() -> None:
    runtime.catch_up(registry.get("catalog.book_listing"))


def listing_queries(client: APIClient, url: str) -> tuple[dict, int]:
    with CaptureQueriesContext(connections["read"]) as queries:
        response = client.get(url)
    assert response.status_code == 200
    hits = [q for q in queries.captured_queries if "read_catalog_booklisting" in q["sql"]]
    return response.json(), len(hits)


def test_a_price_change_is_never_served_stale_once_projected():
    book = add_book(price="10.00")
    project()
    client = APIClient()
    # Warm both entries; the second reads come from Redis, not the table
    listing_queries(client, f"/api/books/{book.pk}/")
    listing_queries(client, "/api/books/")
    detail, detail_hits = listing_queries(client, f"/api/books/{book.pk}/")
    page, page_hits = listing_queries(client, "/api/books/")
    assert (detail["price"], page["results"][0]["price"]) == ("10.00", "10.00")
    assert detail_hits == page_hits == 0

    services.book_change_price(actor=None, book_id=book.pk, price=Decimal("7.77"))
    project()

    detail, detail_hits = listing_queries(client, f"/api/books/{book.pk}/")
    page, _ = listing_queries(client, "/api/books/")
    assert detail["price"] == "7.77"
    assert detail_hits == 0  # the projector rewrote the entry after its commit
    assert page["results"][0]["price"] == "7.77"  # the old page was retired


@pytest.mark.parametrize("send", ["header", "query"])
def test_a_read_waiting_for_a_position_never_gets_an_older_cached_entry(send, settings):
    settings.CQRS_READ_WAIT_SECONDS = 0.2
    book = add_book(price="10.00")
    project()
    client = APIClient()
    listing_queries(client, f"/api/books/{book.pk}/")  # cached now
    services.book_change_price(actor=None, book_id=book.pk, price=Decimal("7.77"))
    position = head_position()  # not projected yet

    if send == "header":
        response = client.get(f"/api/books/{book.pk}/", HTTP_X_MIN_POSITION=str(position))
    else:
        response = client.get(f"/api/books/{book.pk}/?min_position={position}")

    # The cached 10.00 must not pass for an answer at that position.
    assert response["X-Read-Consistency"] == "stale"
    assert int(response["X-Read-Position"]) < position


def test_a_rebuild_leaves_no_old_entry_behind():
    book = add_book(title="Right Title")
    project()
    django_cache.set(cache.book_key(book.pk), b'{"id": %d, "title": "A stale title"}' % book.pk)
    assert APIClient().get(f"/api/books/{book.pk}/").json()["title"] == "A stale title"

    call_command("rebuild_read_models", projector=["catalog.book_listing"], verbosity=0)

    assert APIClient().get(f"/api/books/{book.pk}/").json()["title"] == "Right Title"


def test_deep_pages_are_not_cached():
    assert cache.list_digest({"cursor": "abc"}) is None
    assert cache.list_digest({"q": "river", "cursor": "abc"}) is None
    assert cache.list_digest({"availability": "out", "ordering": "price"}) is not None


def test_a_search_asked_again_is_cached_and_never_served_stale(monkeypatch):
    book = add_book(title="The Searchable River", price="10.00")
    add_book(title="Searchable Sea", price="11.00")
    project()
    client = APIClient()
    # A search reads the bound of its walk once a minute (selectors.WALK_BOUND_SECONDS): read
    # it now, so that the first two requests below read the same.
    monkeypatch.setattr(selectors, "_walk_bounds", {})
    listing_queries(client, "/api/books/?q=sea")
    first, first_queries = listing_queries(client, "/api/books/?q=searchable+river")
    second, second_queries = listing_queries(client, "/api/books/?q=Searchable%20%20River")
    third, third_queries = listing_queries(client, "/api/books/?q=searchable+river")

    # Asked once: loaded, not kept. Asked again (case and spacing aside): kept. Then served.
    assert first_queries == second_queries >= 1
    assert third_queries == 0
    assert first == second == third
    assert first["results"][0]["title"] == "The Searchable River"

    services.book_change_price(actor=None, book_id=book.pk, price=Decimal("12.00"))
    project()
    changed, queries = listing_queries(client, "/api/books/?q=searchable+river")
    assert queries >= 1
    assert changed["results"][0]["price"] == "12.00"


def test_a_hit_answered_before_drf_is_the_answer_drf_gives():
    from rest_framework.authtoken.models import Token

    from tests.factories import UserFactory

    book = add_book(title="The Same Either Way")
    project()
    anonymous, signed_in = APIClient(), APIClient()
    signed_in.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=UserFactory())}")
    for url in ["/api/books/", f"/api/books/{book.pk}/", "/api/books/?ordering=price"]:
        anonymous.get(url)  # fills the cache
        with CaptureQueriesContext(connections["read"]) as queries:
            fast = anonymous.get(url)  # answered before DRF's cycle
        through_drf = signed_in.get(url)  # a token sends it through DRF, still from the cache
        assert fast.status_code == through_drf.status_code == 200
        assert fast.content == through_drf.content
        for header in ["Content-Type", "Allow", "X-Read-Position", "X-Read-Lag"]:
            assert fast[header] == through_drf[header], header
        # DRF's way also looks at the session, hence "Cookie"; the body never depends on it
        assert "Accept" in fast["Vary"]
        assert "Accept" in through_drf["Vary"]
        assert queries.captured_queries == []

    # The early answer never skips authentication: a bad token is still refused
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert bad.get("/api/books/").status_code in (401, 403)
