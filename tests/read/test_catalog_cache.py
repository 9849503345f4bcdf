from decimal import Decimal

import pytest
from django.core.cache import cache as django_cache
from django.core.management import call_command
from django.db import connections
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from apps.cqrs import runtime
from apps.cqrs.projectors import registry
from apps.read.catalog import cache
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


def test_a_rebuild_leaves_no_old_entry_behind():
    book = add_book(title="Right Title")
    project()
    django_cache.set(
        cache.book_key(book.pk), cache.render({"id": book.pk, "title": "A stale title"})
    )
    assert APIClient().get(f"/api/books/{book.pk}/").json()["title"] == "A stale title"

    call_command("rebuild_read_models", projector=["catalog.book_listing"], verbosity=0)

    assert APIClient().get(f"/api/books/{book.pk}/").json()["title"] == "Right Title"


def test_without_redis_the_catalog_reads_the_tables(settings):
    book = add_book(title="Still Here")
    project()
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
        }
    }
    client = APIClient()
    assert client.get(f"/api/books/{book.pk}/").json()["title"] == "Still Here"
    assert client.get("/api/books/").json()["results"][0]["title"] == "Still Here"


def test_searches_and_deep_pages_are_not_cached():
    add_book(title="Searchable")
    project()
    assert cache.list_key({"q": "searchable"}) is None
    assert cache.list_key({"cursor": "abc"}) is None
    assert cache.list_key({"availability": "out", "ordering": "price"}) is not None
