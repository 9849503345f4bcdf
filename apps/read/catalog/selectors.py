import re
from typing import Any

from django.db import connections
from django.db.models import FloatField, Q, QuerySet, Value
from django.db.models.expressions import RawSQL

from apps.read.catalog.models import BookListing

# Below this, a title or author is too unlike the query to offer it for a misspelling
# (pg_trgm's word similarity: "lanturn" and "The Lantern Bearer" score 0.5).
TYPO_SIMILARITY = 0.4
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
    ("quoted phrases", -excluded, or) is honoured when used. When that finds nothing, titles
    and authors that look like the query are offered instead (pg_trgm), for misspellings
    ("lanturn", "tolkein"). An ISBN, with or without hyphens, finds its book.
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
        return books.filter(condition).annotate(rank=Value(0.0, output_field=FloatField()))
    matched = _full_text(books, q)
    if matched.exists():
        return matched
    return _similar(books, q)


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


def _similar(books: QuerySet[BookListing], q: str) -> QuerySet[BookListing]:
    with connections[books.db].cursor() as cursor:
        # The threshold the index's operator (<%) uses, for this connection.
        cursor.execute(
            "SELECT set_config('pg_trgm.word_similarity_threshold', %s, false)",
            [str(TYPO_SIMILARITY)],
        )
    text = q.lower()
    return books.annotate(
        matches=RawSQL(f"%s <%% {TRIGRAM_TEXT}", [text]),
        rank=RawSQL(f"word_similarity(%s, {TRIGRAM_TEXT})", [text], output_field=FloatField()),
    ).filter(matches=True)


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
