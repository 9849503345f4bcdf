import re
from typing import Any

from django.db import connections
from django.db.models import FloatField, Q, QuerySet, Value
from django.db.models.expressions import RawSQL

from apps.read.catalog.models import VOCABULARY_WORD, BookListing

# Below this, a word of the catalog is too unlike a word of the query to correct it to
# (pg_trgm's similarity: "lanturn" and "lantern" score 0.45, "tolkein" and "tolkien" 0.33).
TYPO_SIMILARITY = 0.3
# A query's words past these are not corrected: each costs an index look-up.
MAX_CORRECTED_WORDS = 6
# The expression of the trigram index (migrations/0010_listing_ranked_search.py): the same
# text here, or PostgreSQL does not use the index.
TRIGRAM_TEXT = "lower(title || ' ' || author_names)"
_WEB_SEARCH_SYNTAX = re.compile(r'"|(^|\s)-\S|\sor\s', re.IGNORECASE)


def book_listings() -> QuerySet[BookListing]:
    return BookListing.objects.all()


def book_listing_get(*, book_id: int) -> BookListing:
    return BookListing.objects.get(book_id=book_id)


def _isbn(q: str) -> str | None:
    digits = re.sub(r"[\s-]", "", q)
    if len(digits) == 13 and digits.isdigit():
        return digits
    if len(digits) == 10 and digits[:9].isdigit() and (digits[9].isdigit() or digits[9] in "xX"):
        # An ISBN-10 is an ISBN-13 with 978 in front and its own check digit.
        core = "978" + digits[:9]
        check = (10 - sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(core)) % 10) % 10
        return core + str(check)
    return None


def book_search(books: QuerySet[BookListing], *, q: str) -> QuerySet[BookListing]:
    """Search title, subtitle, authors, description and ISBN, most relevant first: the books
    come annotated with `rank` (higher is better), which callers order by when they were not
    asked for another order.

    PostgreSQL: a weighted, stored tsvector (title above authors above description). The last
    word matches as a prefix, for search as you type ("tolk" finds Tolkien); web-search syntax
    ("quoted phrases", -excluded, or) is honoured when used. When that finds nothing, each
    word is corrected to the nearest word of the catalog's titles and authors (pg_trgm over
    their vocabulary), for misspellings ("lanturn", "tolkein"), and those are searched for.
    An ISBN, with or without hyphens, finds its book.
    Elsewhere (the embedded SQLite default): every word must appear, in title order.
    """
    q = q.strip()
    if not q:
        return books
    if isbn := _isbn(q):
        return books.filter(isbn=isbn).annotate(rank=Value(1.0, output_field=FloatField()))
    if connections[books.db].vendor != "postgresql":
        condition = Q()
        for word in q.split():
            condition &= Q(search_text__icontains=word)
        return _unranked(books.filter(condition))
    matched = _full_text(books, q)
    if _matches_any(matched):
        return matched
    return _corrected(books, q)


def _unranked(books: QuerySet[BookListing]) -> QuerySet[BookListing]:
    """Books with the `rank` every search result carries (pages and the API order by it)."""
    return books.annotate(rank=Value(0.0, output_field=FloatField()))


def _matches_any(books: QuerySet[BookListing]) -> bool:
    """Whether a search finds a book, asked of its index. Left to itself, the planner expects
    thousands of books for a word (a prefix above all) and reads the table until it meets the
    first, so a word no book has, a misspelling, read every row: 480-500 ms at a million
    books. Through the index, such a word costs nothing, and a common one the index scan."""
    with connections[books.db].cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        try:
            return books.exists()
        finally:
            cursor.execute("RESET enable_seqscan")


def _full_text(books: QuerySet[BookListing], q: str) -> QuerySet[BookListing]:
    if _WEB_SEARCH_SYNTAX.search(q):
        query, params = "websearch_to_tsquery('english', %s)", [q]
    else:
        words = re.findall(r"[^\W_]+", q)
        if not words:
            return books.none()
        # Every word, the last one as a prefix (the word being typed).
        query = "to_tsquery('english', %s)"
        params = [" & ".join([*words[:-1], words[-1] + ":*"])]
    return books.annotate(
        matches=RawSQL(f"search_vector @@ {query}", params),
        rank=RawSQL(f"ts_rank_cd(search_vector, {query})", params, output_field=FloatField()),
    ).filter(matches=True)


# For each word of the query, in order, the nearest word of the vocabulary, or NULL.
NEAREST_WORDS_SQL = """
SELECT (SELECT v.word FROM read_catalog_searchword v WHERE v.word %% q.word
        ORDER BY similarity(v.word, q.word) DESC, v.word LIMIT 1)
FROM unnest(%s::text[]) WITH ORDINALITY AS q(word, i) ORDER BY q.i
"""


def _corrected(books: QuerySet[BookListing], q: str) -> QuerySet[BookListing]:
    """A search for the query's words, each that could be a word of the vocabulary replaced
    by the nearest one there is (SearchWord, pg_trgm similarity); others ("of", "2") stay as
    they are. Nothing when a word has none near enough, or when nothing was corrected (the
    search for those words found nothing)."""
    words = re.findall(r"[^\W_]+", q.lower())[:MAX_CORRECTED_WORDS]
    wrong = [word for word in words if VOCABULARY_WORD.fullmatch(word)]
    nothing = _unranked(books.none())
    if not wrong:
        return nothing
    with connections[books.db].cursor() as cursor:
        # The threshold of the index's operator (%), for this connection.
        cursor.execute(
            "SELECT set_config('pg_trgm.similarity_threshold', %s, false)", [str(TYPO_SIMILARITY)]
        )
        cursor.execute(NEAREST_WORDS_SQL, [wrong])
        nearest = dict(zip(wrong, (row[0] for row in cursor.fetchall()), strict=True))
    if None in nearest.values() or all(word == near for word, near in nearest.items()):
        return nothing
    return _full_text(books, " ".join(nearest.get(word, word) for word in words))


# Shorter text cannot use the trigram index, and suggests too much to be useful anyway.
SUGGEST_MIN_LENGTH = 3


def book_suggestions(*, q: str, limit: int = 10) -> list[dict[str, object]]:
    """For a search box: titles and authors that contain `q` (case-insensitive), at most
    `limit`, titles of the best-selling books first, then up to 3 authors."""
    text = q.strip().lower()
    if len(text) < SUGGEST_MIN_LENGTH:
        return []
    titles: list[dict[str, object]] = []
    authors: dict[int, dict[str, object]] = {}
    for row in suggestion_candidates(text=text, limit=limit * 5):
        if text in row["title"].lower() and len(titles) < limit:
            titles.append({"kind": "title", "text": row["title"], "book_id": row["book_id"]})
        for author in row["authors"]:
            if text in author["name"].lower():
                authors.setdefault(
                    author["id"],
                    {"kind": "author", "text": author["name"], "author_id": author["id"]},
                )
    people = list(authors.values())[:3]
    return (titles[: limit - len(people)] + people)[:limit]


def suggestion_candidates(*, text: str, limit: int = 50) -> QuerySet[BookListing, Any]:
    """Books whose title or authors contain `text` (lower case), best-selling first."""
    books = BookListing.objects.all()
    if connections[books.db].vendor == "postgresql":
        pattern = "%" + re.sub(r"([\\%_])", r"\\\1", text) + "%"
        books = books.annotate(
            matches=RawSQL(f"{TRIGRAM_TEXT} LIKE %s", [pattern])  # the trigram index's text
        ).filter(matches=True)
    else:
        books = books.filter(Q(title__icontains=text) | Q(author_names__icontains=text))
    return books.order_by("-units_sold", "book_id").values("book_id", "title", "authors")[:limit]


def books_by_author(books: QuerySet[BookListing], *, author_id: int) -> QuerySet[BookListing]:
    if connections[books.db].vendor == "postgresql":
        return books.filter(authors__contains=[{"id": author_id}])
    # SQLite has no JSON containment: narrow by text, then it is exact for ids written by the
    # projector ({"id": N, "name": ...}).
    return books.filter(authors__icontains=f'"id": {author_id},')


def books_after(books: QuerySet[BookListing], *, title: str, book_id: int) -> QuerySet[BookListing]:
    """Keyset pagination by (title, book_id): page N costs what page 1 costs."""
    return books.filter(Q(title__gt=title) | Q(title=title, book_id__gt=book_id))


def new_books(*, limit: int = 8) -> QuerySet[BookListing]:
    return (
        BookListing.objects.exclude(availability="discontinued")
        .exclude(published_on=None)
        .order_by("-published_on", "-book_id")[:limit]
    )
