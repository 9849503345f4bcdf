"""Catalog search (apps/read/catalog/selectors.py): relevance, prefixes, misspellings, ISBNs,
on the API and the pages, with the indexes PostgreSQL is meant to use."""

import random
import string

import pytest
from django.db import connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from apps.cqrs import runtime
from apps.cqrs.projectors import registry
from apps.read.catalog import selectors
from apps.read.catalog.models import SearchWord
from apps.storefront import views
from apps.write.catalog import services as catalog
from tests.factories import add_author, add_book

pytestmark = pytest.mark.django_db(databases=["default", "read"])


@pytest.fixture
def shelf():
    tolkien = add_author(name="J. R. R. Tolkien")
    river_author = add_author(name="Jo River")
    books = {
        "title": add_book(title="River of Stars", authors=[add_author(name="Guy Gavriel Kay")]),
        "author": add_book(title="Quiet Water", authors=[river_author]),
        "description": add_book(
            title="The Long Road", description="A journey along the river to the sea."
        ),
        "hobbit": add_book(title="The Hobbit", authors=[tolkien], isbn="978-0-261-10221-7"),
        "lantern": add_book(title="The Lantern Bearer"),
    }
    runtime.catch_up(registry.get("catalog.book_listing"))
    return books


def ids(q: str, **params) -> list[int]:
    response = APIClient().get("/api/books/", {"q": q, **params})
    assert response.status_code == 200
    return [book["id"] for book in response.json()["results"]]


def test_title_matches_come_before_author_matches_before_description_matches(shelf):
    assert ids("river") == [shelf["title"].pk, shelf["author"].pk, shelf["description"].pk]


def test_another_order_when_asked_for(shelf):
    assert ids("river", ordering="title") == [
        shelf["author"].pk, shelf["title"].pk, shelf["description"].pk
    ]  # fmt: skip


def test_the_last_word_matches_as_a_prefix(shelf):
    assert ids("tolk") == [shelf["hobbit"].pk]
    assert ids("the hob") == [shelf["hobbit"].pk]


@pytest.mark.parametrize(
    ("q", "book"),
    [("lanturn", "lantern"), ("tolkein", "hobbit"), ("rivr of stars", "title")],  # "of" stays
)
def test_a_misspelling_finds_the_book_it_looks_like(shelf, q, book):
    assert ids(q)[0] == shelf[book].pk


@pytest.mark.parametrize("q", ["978-0-261-10221-7", "9780261102217", "0-261-10221-4"])
def test_an_isbn_finds_its_book_with_or_without_hyphens(shelf, q):
    assert ids(q) == [shelf["hobbit"].pk]


def test_web_search_syntax_still_excludes(shelf):
    assert ids("river -stars") == [shelf["author"].pk, shelf["description"].pk]


def test_the_search_page_counts_ranks_and_heads_its_results(shelf):
    page = Client().get("/books/", {"q": "river"}).content.decode()
    assert "Books matching “river”" in page
    assert "3 books found." in page
    assert page.index("River of Stars") < page.index("Quiet Water") < page.index("The Long Road")
    assert "Nothing" not in Client().get("/books/", {"q": "river", "page": "x"}).content.decode()


def test_the_search_page_counts_up_to_what_its_pages_can_show(shelf, monkeypatch):
    monkeypatch.setattr(views, "COUNT_CAP", 2)
    with CaptureQueriesContext(connections["read"]) as queries:
        page = Client().get("/books/", {"q": "river"}).content.decode()
    assert "More than 2 books found." in page
    count = next(q["sql"] for q in queries.captured_queries if "COUNT(*)" in q["sql"])
    assert "LIMIT 3" in count
    monkeypatch.setattr(views, "COUNT_CAP", 3)
    assert "3 books found." in Client().get("/books/", {"q": "river"}).content.decode()


def plan(sql: str, params) -> str:
    with connections["read"].cursor() as cursor:
        # A handful of rows is cheaper to scan: forbid that, to see the index fits the query.
        cursor.execute("SET enable_seqscan = off")
        try:
            cursor.execute(f"EXPLAIN {sql}", params)
            return "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("RESET enable_seqscan")


@pytest.mark.parametrize("q", ["river", "lanturn"])
def test_postgresql_can_use_the_search_indexes(shelf, q):
    books = selectors.book_search(selectors.book_listings(), q=q).order_by("-rank")
    assert "listing_search_vector" in plan(*books.query.sql_with_params())


def test_a_misspelling_is_corrected_through_the_vocabulary_index(shelf):
    # A vocabulary of some size, with statistics, as a real catalog's would be.
    rng = random.Random(18)
    words = {
        "".join(rng.choices(string.ascii_lowercase, k=rng.randint(4, 9))) for _ in range(20_000)
    }
    SearchWord.objects.bulk_create([SearchWord(word=word) for word in words])
    with connections["read"].cursor() as cursor:
        cursor.execute("ANALYZE read_catalog_searchword")
    assert "search_word_trgm" in plan(selectors.NEAREST_WORDS_SQL, [["lanturn"]])


def test_the_vocabulary_holds_the_words_of_titles_subtitles_and_authors(shelf):
    author = shelf["hobbit"].authors.get()
    catalog.author_rename(actor=None, author_id=author.pk, name="Ronald Tolkien")
    catalog.book_change_details(
        actor=None, book_id=shelf["lantern"].pk, title="Lantern Song", subtitle="A Fable"
    )
    listing = registry.get("catalog.book_listing")
    runtime.catch_up(listing)
    live = set(SearchWord.objects.values_list("word", flat=True))

    assert {"river", "stars", "guy", "gavriel", "kay", "hobbit", "tolkien"} <= live
    assert {"ronald", "song", "fable"} <= live  # after the rename and the new title
    assert not {"of", "r", "978"} & live  # too short to correct, or not letters
    runtime.rebuild(listing)
    assert set(SearchWord.objects.values_list("word", flat=True)) == live


@pytest.mark.parametrize(
    "q",
    [
        "stars hobbit",  # both words of the catalog, never in one book: nothing to correct
        "xqzvw",  # no word of the catalog near it
    ],
)
def test_a_search_nothing_corrects_finds_nothing(shelf, q):
    assert ids(q) == []
    page = Client().get("/books/", {"q": q})
    assert page.status_code == 200
    assert "0 books found." in page.content.decode()


def suggestions(q: str | None) -> tuple[int, dict]:
    response = APIClient().get("/api/books/suggestions/", {} if q is None else {"q": q})
    return response.status_code, response.json()


def test_suggestions_offer_titles_then_authors(shelf):
    status, body = suggestions("Riv")
    assert status == 200
    assert [(s["kind"], s["text"]) for s in body["results"]] == [
        ("title", "River of Stars"),
        ("author", "Jo River"),
    ]
    assert body["results"][0]["book_id"] == shelf["title"].pk
    assert suggestions("tolk")[1]["results"] == [
        {
            "kind": "author",
            "text": "J. R. R. Tolkien",
            "author_id": shelf["hobbit"].authors.get().pk,
        }
    ]


@pytest.mark.parametrize("q", ["ab", "  r ", "100%", "a_b\\"])
def test_short_or_odd_suggestion_queries_suggest_nothing(shelf, q):
    assert suggestions(q) == (200, {"results": []})


def test_no_q_suggests_nothing_and_a_long_one_is_a_400_with_the_field():
    assert suggestions(None) == (200, {"results": []})
    assert suggestions("") == (200, {"results": []})
    status, body = suggestions("x" * 101)
    assert status == 400
    assert "q" in body
