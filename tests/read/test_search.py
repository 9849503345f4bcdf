"""Catalog search (apps/read/catalog/selectors.py): relevance, prefixes, misspellings, ISBNs,
on the API and the pages, with the indexes PostgreSQL is meant to use."""

import base64
import random
import string

import pytest
from django.db import connections
from django.db.models import Func, IntegerField
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from apps.cqrs import runtime
from apps.cqrs.projectors import registry
from apps.read.catalog import api, selectors
from apps.read.catalog.models import AuthorName, BookListing, SearchWord
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


@pytest.mark.parametrize("q", ["-river", "the -river", "-river -stars"])
def test_a_search_that_only_excludes_words_finds_nothing(shelf, q):
    # It would match every book without them, which only reading every one finds.
    assert ids(q) == []
    assert "0 books found." in Client().get("/books/", {"q": q}).content.decode()


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


def tier_statements(q: str, *, size: int = 51, **filters) -> list[str]:
    """The statements of a search's first page in relevance order."""
    books = selectors.book_listings().filter(**filters)
    query = selectors.search_query(books, q=q)
    with CaptureQueriesContext(connections["read"]) as queries:
        selectors.ranked_page(books, query=query, start=0, size=size)
    return [q["sql"] for q in queries.captured_queries if "ORDER BY" in q["sql"]]


def test_each_tier_of_a_search_can_be_read_through_an_index(shelf):
    statements = tier_statements("river", availability="out")
    assert len(statements) == 3  # fewer matches than a page: every tier is asked
    for sql in statements:
        assert "Seq Scan" not in plan(sql, None)


FORMATS = ["paperback", "hardcover"]


@pytest.fixture
def tiers():
    """Books in each tier of a search for "harbour", with units sold set on their listings
    (what ranks them within a tier; the projector counts orders, which is not tested here)."""
    rng = random.Random(2026)
    harbour = add_author(name="Ann Harbour")
    books = (
        [add_book(title=f"Harbour Lights {n}", format=FORMATS[n % 2]) for n in range(5)]
        + [
            add_book(title=f"Quiet Days {n}", authors=[harbour], format=FORMATS[n % 2])
            for n in range(4)
        ]
        + [add_book(title=f"Harbour of Ann {n}", authors=[harbour]) for n in range(2)]
        + [add_book(title=f"Low Tide {n}", description="By the harbour wall.") for n in range(6)]
        + [add_book(title="Unrelated", description="Nothing here.")]
    )
    runtime.catch_up(registry.get("catalog.book_listing"))
    for book in books:
        sold = rng.choice([0, 0, 3, 7, 12])  # ties too: the id decides them
        BookListing.objects.filter(book_id=book.pk).update(units_sold=sold)
    return books


@pytest.fixture(params=[3, 5_000], ids=["walk 3", "walk 5000"])
def walk(request, monkeypatch):
    """How many of the most popular books a page is first looked for among: fewer than the
    catalog holds, so that pages are found both in the walk and past it, or all of them."""
    monkeypatch.setattr(selectors, "WALK", request.param)
    monkeypatch.setattr(selectors, "FAR_WALK", request.param * 3)
    monkeypatch.setattr(selectors, "_walk_bounds", {})
    return request.param


@pytest.mark.parametrize(
    ("q", "filters"),
    [
        ("harbour", {}),
        ("ann harbour", {}),  # both words in the title for two, in the names for four more
        ("harb", {"format": "hardcover"}),  # a prefix, and a filter: 2 and 2 in two tiers
        ("harbour l", {}),  # a short last prefix: the walk forced, and taken further
        ("harbour -lights", {}),  # web-search syntax: no tier may hold an excluded book
        ("lanturn", {}),  # corrected to nothing in this catalog: no page
    ],
)
def test_every_page_of_a_search_is_the_slice_of_the_whole_ranking(tiers, walk, q, filters):
    books = selectors.book_listings().filter(**filters)
    query = selectors.search_query(books, q=q)
    whole = list(
        selectors.searched(books, query=query)
        .order_by(*selectors.RELEVANCE)
        .values_list("book_id", flat=True)
    )
    assert len(whole) == len(set(whole))
    for size in (1, 2, 3, 5, 51):
        for start in range(0, len(whole) + 2):
            page = selectors.ranked_page(
                books.values_list("book_id", flat=True), query=query, start=start, size=size
            )
            assert page == whole[start : start + size], (size, start)


def test_the_walk_among_the_most_popular_is_bounded_by_the_index(tiers, monkeypatch):
    monkeypatch.setattr(selectors, "WALK", 3)
    monkeypatch.setattr(selectors, "_walk_bounds", {})
    walks = [sql for sql in tier_statements("harbour", size=2) if "- book_id) >=" in sql]
    assert walks  # the first tier's first page, looked for among the 3 most popular
    with connections["read"].cursor() as cursor:
        cursor.execute("SET enable_bitmapscan = off")
        try:
            walked = plan(walks[0], None)
        finally:
            cursor.execute("RESET enable_bitmapscan")
    # A range of the popularity index: the scan ends at the third most popular book
    assert "Index Scan using listing_popular" in walked
    assert "Index Cond: (((units_sold * '4294967296'::bigint) - book_id) >=" in walked


def test_a_short_last_prefix_walks_rather_than_read_the_prefix_entries(tiers):
    def forces_the_walk(q: str) -> bool:
        books = selectors.book_listings()
        query = selectors.search_query(books, q=q)
        with CaptureQueriesContext(connections["read"]) as queries:
            selectors.ranked_page(books, query=query, start=0, size=3)
        return "SET enable_bitmapscan = off" in [q["sql"] for q in queries.captured_queries]

    assert forces_the_walk("harbour l")
    assert forces_the_walk("harbour li")
    assert not forces_the_walk("harbour lig")
    assert not forces_the_walk("harbour")
    assert not forces_the_walk('"harbour l"')  # web-search syntax: no prefix


def test_a_short_prefix_is_not_looked_up_when_the_words_before_it_match_nothing(tiers):
    books = selectors.book_listings()
    with CaptureQueriesContext(connections["read"]) as queries:
        query = selectors.search_query(books, q="harbr l")
    assert query.corrected == "harbour l"  # as before: nothing had "harbr", so it was corrected
    # ... without asking the index for "harbr" together with every word that begins with "l"
    asked = [q["sql"] for q in queries.captured_queries if "'harbr & l:*'" in q["sql"]]
    assert not [sql for sql in asked if "- book_id) >=" not in sql], asked  # walks only
    # Words before the prefix that the query drops (stop words) prove nothing
    query = selectors.search_query(books, q="a l")
    assert query.corrected is None
    assert selectors.ranked_page(books, query=query, start=0, size=3)


def test_a_page_its_first_tiers_fill_asks_no_further(tiers):
    assert len(tier_statements("harbour", size=3)) == 1  # 7 in the title
    assert len(tier_statements("harbour", size=9)) == 2  # and 4 in the names


def test_relevance_is_the_tier_then_the_best_selling(tiers):
    books = selectors.book_listings()
    query = selectors.search_query(books, q="harbour")
    ranked = list(selectors.searched(books, query=query).order_by(*selectors.RELEVANCE))
    assert [book.rank for book in ranked] == [3] * 7 + [2] * 4 + [1] * 6
    assert {b.title[:7] for b in ranked[:7]} == {"Harbour"}
    assert {b.title[:5] for b in ranked[7:11]} == {"Quiet"}
    for tier in (ranked[:7], ranked[7:11], ranked[11:]):
        assert [(-b.units_sold, b.book_id) for b in tier] == sorted(
            (-b.units_sold, b.book_id) for b in tier
        )


def test_the_api_pages_through_a_search_in_relevance_order(tiers, monkeypatch):
    monkeypatch.setattr(api.SearchPagination, "page_size", 5)
    books = selectors.book_listings()
    query = selectors.search_query(books, q="harbour")
    whole = list(
        selectors.searched(books, query=query)
        .order_by(*selectors.RELEVANCE)
        .values_list("book_id", flat=True)
    )
    client = APIClient()
    seen, pages, url = [], [], "/api/books/?q=harbour"
    while url:
        body = client.get(url).json()
        pages.append(body)
        seen += [book["id"] for book in body["results"]]
        url = body["next"]
    assert seen == whole
    assert len(pages) == 4  # 17 results, 5 a page
    assert pages[0]["previous"] is None
    assert "cursor" not in pages[1]["previous"]  # back to the search itself
    back = client.get(pages[2]["previous"]).json()
    assert back == pages[1]


def test_a_search_cursor_not_ours_is_refused(tiers):
    response = APIClient().get("/api/books/", {"q": "harbour", "cursor": "garbage"})
    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid cursor"}


def test_a_search_cursor_past_the_cut_off_ends_the_pages(tiers, monkeypatch):
    far = base64.b64encode(b"o=9999999999").decode()  # held at the cut-off, past every result
    response = APIClient().get("/api/books/", {"q": "harbour", "cursor": far})
    assert response.status_code == 200
    assert response.json()["results"] == []
    assert response.json()["next"] is None
    # With the cut-off inside the 17 results: the pages end there, and a cursor past it is
    # held at it
    monkeypatch.setattr(api.SearchPagination, "page_size", 5)
    monkeypatch.setattr(api.SearchPagination, "offset_cutoff", 10)
    client, url, pages = APIClient(), "/api/books/?q=harbour", []
    while url and len(pages) < 5:
        body = client.get(url).json()
        pages.append(len(body["results"]))
        url = body["next"]
    assert pages == [5, 5]
    held = client.get("/api/books/", {"q": "harbour", "cursor": far}).json()
    assert len(held["results"]) == 5
    assert held["next"] is None


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


def test_an_author_of_many_books_is_suggested_once_by_their_latest_name(shelf):
    prolific = add_author(name="Ada Abara")
    add_book(title="Coast", authors=[add_author(name="Zadar Kent")])  # "ada", not at the start
    add_author(name="Ada Unpublished")  # no book: not suggested
    for n in range(4):
        add_book(title=f"Volume {n}", authors=[prolific])
    catalog.author_rename(actor=None, author_id=prolific.pk, name="Ada Abara-Stone")
    late = add_book(title="Afterword", authors=[add_author(name="Adalbert Late")])
    # Renamed in the batch that first credits them, and in a batch after the one that did.
    listing = registry.get("catalog.book_listing")
    runtime.catch_up(listing)
    catalog.author_rename(actor=None, author_id=late.authors.get().pk, name="Adalbert Early")
    runtime.catch_up(listing)

    people = [(s["text"], s["kind"]) for s in suggestions("ada")[1]["results"]]
    assert people == [
        ("Ada Abara-Stone", "author"),  # names that start with the text first
        ("Adalbert Early", "author"),
        ("Zadar Kent", "author"),
    ]
    assert suggestions("abara")[1]["results"] == [
        {"kind": "author", "text": "Ada Abara-Stone", "author_id": prolific.pk}
    ]
    for limit in range(5):  # never more than asked for
        assert len(selectors.book_suggestions(q="ada", limit=limit)) == min(limit, 3)
    live = set(AuthorName.objects.values_list("author_id", "name"))
    runtime.rebuild(listing)
    assert set(AuthorName.objects.values_list("author_id", "name")) == live


def test_suggestions_can_use_the_trigram_indexes(shelf):
    with CaptureQueriesContext(connections["read"]) as queries:
        selectors.book_suggestions(q="ada abara")
    statements = [q["sql"] for q in queries.captured_queries if "LIKE" in q["sql"]]
    authors = [sql for sql in statements if "read_catalog_authorname" in sql]
    titles = [sql for sql in statements if "read_catalog_booklisting" in sql]
    assert "author_name_trgm" in plan(authors[-1], None)
    assert "listing_title_trgm" in plan(titles[-1], None)  # among all books


@pytest.mark.parametrize(
    "text",
    [
        "harbour",
        "harbour of",
        "quiet",
        "ights 4",
        "zzqx",
        "bour of ann",
        "ann harbour",  # each word in "Harbour of Ann", the text in no title
    ],
)
@pytest.mark.parametrize("limit", [1, 2, 7])
def test_suggested_titles_are_the_best_selling_that_contain_the_text(tiers, walk, text, limit):
    books = BookListing.objects.order_by(selectors.POPULARITY.desc())
    best = [(b.book_id, b.title) for b in books if text in b.title.lower()][:limit]
    assert selectors.title_candidates(text=text, limit=limit) == best


class SlowStrIndex(Func):
    """STRPOS in a statement that sleeps 50 ms first: a look among all books past a budget."""

    template = "(STRPOS(%(expressions)s) + (SELECT 0 FROM pg_sleep(0.05)))"
    output_field = IntegerField()


def settings_now() -> tuple:
    with connections["read"].cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('statement_timeout'), current_setting('enable_indexscan')"
        )
        return cursor.fetchone()


def test_a_look_among_all_books_past_its_budget_gives_the_walks_titles(tiers, monkeypatch):
    monkeypatch.setattr(selectors, "WALK", 3)
    monkeypatch.setattr(selectors, "_walk_bounds", {})
    books = BookListing.objects.order_by(selectors.POPULARITY.desc())
    walked = [(b.book_id, b.title) for b in books[:3] if "harbour" in b.title.lower()]
    every = [(b.book_id, b.title) for b in books if "harbour" in b.title.lower()]
    assert 0 < len(walked) < len(every)
    before = settings_now()
    assert selectors.title_candidates(text="harbour", limit=7) == every[:7]
    assert settings_now() == before  # put back after a look in its budget
    monkeypatch.setattr(selectors, "StrIndex", SlowStrIndex)
    monkeypatch.setattr(selectors, "SUGGEST_BUDGET", "10ms")
    assert selectors.title_candidates(text="harbour", limit=7) == walked
    assert settings_now() == before  # and after one cancelled


@pytest.mark.parametrize("q", ["ab", "  r ", "100%", "a_b\\"])
def test_short_or_odd_suggestion_queries_suggest_nothing(shelf, q):
    assert suggestions(q) == (200, {"results": []})


@pytest.mark.parametrize("q", ["...", ",,,,", "a b c", "x y z", "of a"])
def test_a_text_without_three_letters_or_digits_in_a_row_is_not_looked_for(shelf, q):
    # pg_trgm takes no trigram from it, and such a LIKE reads the whole index: 1.8 s for
    # `...` at a million books.
    with CaptureQueriesContext(connections["read"]) as queries:
        assert suggestions(q) == (200, {"results": []})
    assert not [x["sql"] for x in queries.captured_queries if "LIKE" in x["sql"]]


def test_no_q_suggests_nothing_and_a_long_one_is_a_400_with_the_field():
    assert suggestions(None) == (200, {"results": []})
    assert suggestions("") == (200, {"results": []})
    status, body = suggestions("x" * 101)
    assert status == 400
    assert "q" in body
