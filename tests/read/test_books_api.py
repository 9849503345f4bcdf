import base64
from urllib.parse import urlencode

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from apps.cqrs import runtime
from apps.cqrs.models import ProjectorCheckpoint
from apps.cqrs.projectors import registry
from apps.read.catalog.models import BookListing
from apps.write.catalog import services as catalog
from apps.write.inventory import services as inventory
from tests.factories import UserFactory, add_author, add_book, place_order, stocked_book

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "read"])
WRITE_TABLES = ("catalog_", "cqrs_domainevent", "auth_")


def test_books_endpoint_reads_the_read_model_only():
    author = add_author(name="Italo Calvino")
    book = add_book(title="Invisible Cities", authors=[author], price="14.00")
    runtime.catch_up(registry.get("catalog.book_listing"))
    client = APIClient()

    with (
        CaptureQueriesContext(connections["default"]) as write_queries,
        CaptureQueriesContext(connections["read"]) as read_queries,
    ):
        listing = client.get("/api/books/")
        detail = client.get(f"/api/books/{book.pk}/")

    assert listing.status_code == detail.status_code == 200
    assert [b["title"] for b in listing.json()["results"]] == ["Invisible Cities"]
    assert detail.json()["author_names"] == "Italo Calvino"
    sql = [q["sql"] for q in [*write_queries.captured_queries, *read_queries.captured_queries]]
    assert sql, "the endpoints ran no query at all"
    assert not [s for s in sql if any(f'"{t}' in s for t in WRITE_TABLES)], sql


def test_an_unknown_api_path_is_a_json_404():
    response = APIClient().get("/api/books/1.5/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_an_unknown_book_is_a_404():
    assert APIClient().get("/api/books/987654/").status_code == 404


def test_the_schema_documents_queries_and_commands():
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/api/books/", "/api/books/{id}/", "/api/commands/add-book/"} <= set(paths)
    result = paths["/api/commands/add-book/"]["post"]["responses"]["201"]
    ref = result["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/BookResult")


def test_rebuilding_an_unknown_projector_is_an_error_that_changes_nothing():
    with pytest.raises(CommandError, match="No projector named 'nope'"):
        call_command("rebuild_read_models", projector=["nope"])


def test_availability_follows_stock_orders_and_the_catalog_and_replays_the_same():

    listing = registry.get("catalog.book_listing")

    def availability(book):
        runtime.catch_up(listing)
        row = BookListing.objects.get(book_id=book.pk)
        return row.availability, row.quantity_available

    book = stocked_book(on_hand=7)
    assert availability(book) == ("in_stock", 7)
    place_order(UserFactory(), (book, 3))
    assert availability(book) == ("low", 4)
    inventory.stock_adjust(actor=None, book_id=book.pk, change=-4, reason="damage")
    assert availability(book) == ("out", 0)
    inventory.stock_set_backorders(actor=None, book_id=book.pk, allowed=True)
    assert availability(book) == ("backorder", 0)
    catalog.book_discontinue(actor=None, book_id=book.pk)
    assert availability(book) == ("discontinued", 0)

    live = list(BookListing.objects.values_list())
    call_command("rebuild_read_models", projector=["catalog.book_listing"], verbosity=0)
    assert list(BookListing.objects.values_list()) == live
    assert (
        APIClient().get("/api/books/?availability=discontinued").json()["results"][0]["id"]
        == book.pk
    )


def test_search_filters_and_ordering():
    from tests.factories import stocked_book

    tolkien, le_guin = add_author(name="J. R. R. Tolkien"), add_author(name="Ursula K. Le Guin")
    hobbit = add_book(
        title="The Hobbit", authors=[tolkien], price="12.00", published_on="1937-09-21"
    )
    earthsea = add_book(
        title="A Wizard of Earthsea", authors=[le_guin], price="9.00", published_on="1968-11-01"
    )
    lathe = stocked_book(
        title="The Lathe of Heaven", authors=[le_guin], price="15.00", published_on="1971-01-01"
    )
    runtime.catch_up(registry.get("catalog.book_listing"))
    client = APIClient()

    def ids(query: str) -> list[int]:
        response = client.get(f"/api/books/?{query}")
        assert response.status_code == 200, response.json()
        return [b["id"] for b in response.json()["results"]]

    assert ids("q=wizards") == [earthsea.pk]  # stemmed
    assert ids("q=le guin") == [earthsea.pk, lathe.pk]
    assert ids("q=heaven -wizard") == [lathe.pk]
    assert ids(f"q={hobbit.isbn}") == [hobbit.pk]
    assert ids(f"author={le_guin.pk}") == [earthsea.pk, lathe.pk]
    assert ids("price_min=10&price_max=14") == [hobbit.pk]
    assert ids("availability=in_stock") == [lathe.pk]
    assert ids("published_before=1970-01-01&ordering=-price") == [hobbit.pk, earthsea.pk]
    assert ids("ordering=price") == [earthsea.pk, hobbit.pk, lathe.pk]
    # `format` is the book format here, not DRF's renderer override
    assert ids("format=paperback") == [earthsea.pk, hobbit.pk, lathe.pk]
    assert ids("format=audiobook") == []
    assert client.get("/api/books/?price_min=cheap").status_code == 400
    assert client.get("/api/books/?availability=plenty").status_code == 400
    assert BookListing.objects.count() == 3


@pytest.mark.parametrize(
    "ordering",
    ["", "-title", "price", "-price", "published_on", "-published_on", "units_sold", "-units_sold"],
)
def test_cursor_pages_hold_every_book_once_in_each_order(monkeypatch, ordering):
    from apps.read.catalog.api import BookCursorPagination

    monkeypatch.setattr(BookCursorPagination, "page_size", 2)
    for n in range(7):  # no ties in any order: the cursor alone decides
        add_book(
            title=f"Book {n:02}", price=f"{10 + (n * 3) % 7}.00", published_on=f"19{50 + n}-01-01"
        )
    runtime.catch_up(registry.get("catalog.book_listing"))
    for sold, listing in enumerate(BookListing.objects.order_by("-book_id")):
        BookListing.objects.filter(pk=listing.pk).update(units_sold=sold)
    field = ordering.lstrip("-") or "title"
    whole = list(
        BookListing.objects.order_by(
            f"{'-' if ordering.startswith('-') else ''}{field}"
        ).values_list("book_id", flat=True)
    )
    client = APIClient()
    pages, url = [], f"/api/books/?ordering={ordering}" if ordering else "/api/books/"
    while url:
        body = client.get(url).json()
        pages.append([book["id"] for book in body["results"]])
        url = body["next"]
    assert [i for page in pages for i in page] == whole
    backwards, url = [], body["previous"]
    while url:
        body = client.get(url).json()
        backwards.insert(0, [book["id"] for book in body["results"]])
        url = body["previous"]
    assert backwards == pages[:-1]


def test_best_selling_first_pages_through_ties_by_id_and_reads_the_popularity_index(
    monkeypatch,
):
    from apps.read.catalog.api import BookCursorPagination

    monkeypatch.setattr(BookCursorPagination, "page_size", 2)
    books = [add_book(title=f"Book {n}") for n in range(7)]
    runtime.catch_up(registry.get("catalog.book_listing"))
    for book, sold in zip(books, [3, 0, 3, 0, 0, 5, 0], strict=True):
        BookListing.objects.filter(pk=book.pk).update(units_sold=sold)
    rows = BookListing.objects.values_list("units_sold", "book_id")
    client = APIClient()
    for ordering, expected in [
        ("-units_sold", [i for _, i in sorted(rows, key=lambda row: (-row[0], row[1]))]),
        ("units_sold", [i for _, i in sorted(rows, key=lambda row: (row[0], -row[1]))]),
    ]:
        pages, url = [], f"/api/books/?ordering={ordering}"
        with CaptureQueriesContext(connections["read"]) as queries:
            while url:
                body = client.get(url).json()
                pages += [book["id"] for book in body["results"]]
                url = body["next"]
        assert pages == expected, ordering
        listing = [q["sql"] for q in queries.captured_queries if "ORDER BY" in q["sql"]]
        with connections["read"].cursor() as cursor:
            cursor.execute("SET enable_seqscan = off")
            cursor.execute(f"EXPLAIN {listing[-1]}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
            cursor.execute("RESET enable_seqscan")
        assert "listing_popular" in plan, plan


def forged_cursor(position: str) -> str:
    """A cursor as DRF encodes one, holding any position a client likes."""
    return base64.b64encode(urlencode({"o": 0, "r": 0, "p": position}).encode()).decode()


@pytest.mark.parametrize("ordering", ["price", "-published_on", "units_sold", "-units_sold"])
@pytest.mark.parametrize("position", ["abc", "-", "NaN", "2020-13-45"])
def test_a_cursor_whose_position_is_no_value_of_the_order_is_refused(ordering, position):
    add_book(title="Any")
    runtime.catch_up(registry.get("catalog.book_listing"))
    response = APIClient().get(
        "/api/books/", {"ordering": ordering, "cursor": forged_cursor(position)}
    )
    assert (response.status_code, response.json()) == (404, {"detail": "Invalid cursor"})


def test_any_text_is_a_position_in_title_order():
    add_book(title="Any")
    runtime.catch_up(registry.get("catalog.book_listing"))
    response = APIClient().get("/api/books/", {"cursor": forged_cursor("NaN")})
    assert response.status_code == 200


def test_the_browsable_api_renders_every_endpoint_for_staff(client):
    from django.contrib.auth import get_user_model

    from config.urls import command_routes, router

    client.force_login(get_user_model().objects.create_superuser("root", "r@example.com", "pw"))
    urls = ["/api/", "/api/docs/"]
    urls += [f"/api/{prefix}/" for prefix, _viewset, _basename in router.registry]
    urls += [f"/api/commands/{route}" for route, _view, _name in command_routes]
    for url in urls:
        response = client.get(url, HTTP_ACCEPT="text/html")
        assert response.status_code in (200, 405), (url, response.status_code)
        assert b"<html" in response.content.lower(), url


def test_a_cached_read_asks_no_database_and_never_claims_more_than_the_checkpoint():
    author = add_author()
    add_book(title="The Dispossessed", authors=[author])
    listing = registry.get("catalog.book_listing")
    runtime.catch_up(listing)
    checkpoint = ProjectorCheckpoint.objects.get(name=listing.name).position
    client = APIClient()
    client.get("/api/books/")  # fills the page cache

    with (
        CaptureQueriesContext(connections["default"]) as write_queries,
        CaptureQueriesContext(connections["read"]) as read_queries,
    ):
        cached = client.get("/api/books/")
    assert write_queries.captured_queries == read_queries.captured_queries == []
    assert cached["X-Read-Position"] == str(checkpoint)

    # A new event not yet projected: the position said is still the checkpoint's, and a client
    # waiting for the new event is answered from the tables once the projector has it.
    book = add_book(title="The Word for World Is Forest", authors=[author])
    head = runtime.head_position()
    assert client.get("/api/books/")["X-Read-Position"] == str(checkpoint)
    runtime.catch_up(listing)
    fresh = client.get("/api/books/", HTTP_X_MIN_POSITION=str(head))
    assert fresh["X-Read-Consistency"] == "fresh"
    assert book.pk in [b["id"] for b in fresh.json()["results"]]

    # Without the cached checkpoint, the table answers.
    cache.delete_many([f"cqrs:checkpoint:{listing.name}"])
    assert client.get("/api/books/")["X-Read-Position"] == str(head)
