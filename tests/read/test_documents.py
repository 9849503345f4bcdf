"""The books API sends the documents the projector stores (apps/read/catalog/documents.py)."""

import datetime
import json
from decimal import Decimal

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient

from apps.cqrs import runtime
from apps.cqrs.projectors import registry
from apps.read.catalog.api import BookListingSerializer
from apps.read.catalog.models import BookListing
from apps.write.catalog import services as catalog
from tests.factories import UserFactory, add_author, add_book, place_order, stocked_book

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "read"])


def project() -> None:
    runtime.catch_up(registry.get("catalog.book_listing"))


def serialized(listing: BookListing) -> dict:
    """What DRF's serializer and renderer make of the row: the shape the schema documents."""
    return json.loads(JSONRenderer().render(BookListingSerializer(listing).data))


def test_every_change_leaves_a_document_equal_to_what_the_serializer_makes():
    le_guin = add_author(name="Ursula K. Le Guin")
    plain = add_book(title="The Lathe of Heaven", authors=[le_guin], price="9.50")
    odd = add_book(
        title="Les Misérables \u2028 “quoted”",
        authors=[le_guin, add_author(name="Émile Zola")],
        published_on=datetime.date(1862, 4, 3),
        description='A "long" one\nwith lines',
    )
    stocked = stocked_book(on_hand=4, title="Stocked")
    place_order(UserFactory(), (stocked, 2))
    catalog.book_change_price(actor=None, book_id=plain.pk, price=Decimal("11.00"))
    catalog.book_change_details(actor=None, book_id=odd.pk, subtitle="Tome I: Fantine")
    catalog.author_rename(actor=None, author_id=le_guin.pk, name="Ursula Kroeber Le Guin")
    project()

    listings = list(BookListing.objects.order_by("book_id"))
    assert len(listings) == 3
    for listing in listings:
        assert json.loads(listing.document) == serialized(listing)
    first = json.loads(listings[0].document)
    assert first["price"] == "11.00"
    assert first["author_names"] == "Ursula Kroeber Le Guin"
    assert "\u2028" not in listings[1].document  # escaped, as DRF's renderer does
    assert json.loads(listings[2].document)["units_sold"] == 2


def test_an_uncached_page_and_detail_send_the_documents_with_one_query_of_the_listings(settings):
    for n in range(3):
        add_book(title=f"Volume {n}", price=f"1{n}.00")
    project()
    client = APIClient()

    with CaptureQueriesContext(connections["read"]) as queries:
        page = client.get("/api/books/?ordering=-price")
    listing_queries = [q for q in queries.captured_queries if "booklisting" in q["sql"]]

    assert page.status_code == 200
    expected = [serialized(b) for b in BookListing.objects.order_by("-price", "book_id")]
    assert page.json()["results"] == expected
    assert len(listing_queries) == 1, listing_queries
    book = expected[0]["id"]
    assert client.get(f"/api/books/{book}/").json() == expected[0]


def test_a_row_without_its_document_yet_is_served_from_its_columns():
    """Rows written by read model version 2 have no document until the rebuild switches."""
    book = add_book(title="Before Documents", price="7.00")
    add_book(title="After Documents", price="8.00")
    project()
    BookListing.objects.filter(book_id=book.pk).update(document="")
    client = APIClient()

    page = client.get("/api/books/?ordering=price")
    detail = client.get(f"/api/books/{book.pk}/", HTTP_AUTHORIZATION="")

    assert page.status_code == detail.status_code == 200
    assert page.json()["results"] == [serialized(b) for b in BookListing.objects.order_by("price")]
    assert detail.json()["title"] == "Before Documents"


def test_a_page_of_the_catalog_answered_before_drf_is_the_answer_drf_gives():
    from rest_framework.authtoken.models import Token

    from tests.factories import UserFactory

    for n in range(60):
        add_book(title=f"Volume {n:02d}", price=f"{10 + n % 7}.00")
    project()
    anonymous, signed_in = APIClient(), APIClient()
    signed_in.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=UserFactory())}")
    first = anonymous.get("/api/books/?ordering=-price").json()
    deep = first["next"].replace("http://testserver", "")  # a cursor: never cached

    with CaptureQueriesContext(connections["read"]) as queries:
        fast = anonymous.get(deep)  # before DRF: no session, no token, a plain page
    listing_reads = [q for q in queries.captured_queries if "booklisting" in q["sql"]]
    through_drf = signed_in.get(deep)  # a token sends it through DRF's cycle

    assert fast.status_code == through_drf.status_code == 200
    assert fast.content == through_drf.content
    for header in ["Content-Type", "Allow", "X-Read-Position", "X-Read-Lag"]:
        assert fast[header] == through_drf[header], header
    assert len(listing_reads) == 1
    assert len(fast.json()["results"]) == 10
    # Errors are DRF's, whichever way the request came in
    assert anonymous.get("/api/books/?cursor=not-a-cursor").json() == {"detail": "Invalid cursor"}
