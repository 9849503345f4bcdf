import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from django.db import OperationalError, connections, transaction
from django.db.models import BooleanField, ExpressionWrapper, IntegerField, Q, QuerySet, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Lower, StrIndex

from apps.read.catalog.models import POPULARITY, VOCABULARY_WORD, AuthorName, BookListing

# Below this, a word of the catalog is too unlike a word of the query to correct it to
# (pg_trgm's similarity: "lanturn" and "lantern" score 0.45, "tolkein" and "tolkien" 0.33).
TYPO_SIMILARITY = 0.3
# A query's words past these are not corrected: each costs an index look-up.
MAX_CORRECTED_WORDS = 6
_WEB_SEARCH_SYNTAX = re.compile(r'"|(^|\s)-\S|\sor\s', re.IGNORECASE)


def book_listings() -> QuerySet[BookListing]:
    return BookListing.objects.all()


# What a page of the whole catalog may be ordered by (the API's `ordering_fields`, popularity
# for `units_sold`, and the id that breaks title ties), as SQL.
CATALOG_ORDERS = {
    "title": "title",
    "price": "price",
    "published_on": "published_on",
    "popularity": POPULARITY.sql,
    "book_id": "book_id",
}


def catalog_page(
    *,
    using: str,
    ordering: Sequence[str],
    after: tuple[str, str, Any] | None,
    offset: int,
    limit: int,
) -> list[dict[str, Any]]:
    """Rows of the whole catalog, unfiltered, in `ordering` ("-price": descending), past
    `after` (field, "gt" or "lt", value) when given, from `offset` on: dicts of the book id,
    its document and the value of the ordering's first field, as `values()` gives them.
    SQL written here rather than by the ORM, which took 0.40 ms of CPU to make and read such
    a query where this takes 0.12 ms: most of an uncached page of the catalog."""
    params: list[Any] = []
    where = ""
    if after is not None:
        field, lookup, value = after
        where = f"WHERE {CATALOG_ORDERS[field]} {'<' if lookup == 'lt' else '>'} %s "
        params.append(value)
    order = ", ".join(
        f"{CATALOG_ORDERS[term.lstrip('-')]} {'DESC' if term.startswith('-') else 'ASC'}"
        for term in ordering
    )
    first = ordering[0].lstrip("-")
    sql = (
        f"SELECT book_id, document, {CATALOG_ORDERS[first]} "
        f"FROM {BookListing._meta.db_table} {where}ORDER BY {order} LIMIT %s OFFSET %s"
    )
    with connections[using].cursor() as cursor:
        cursor.execute(sql, [*params, limit, offset])
        return [
            {"book_id": book_id, "document": document, first: value}
            for book_id, document, value in cursor.fetchall()
        ]


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


# Relevance (docs/decisions/0013): books with every word of the search in their title come
# first, then those with them in title and authors, then the rest (description, ISBN); the
# best-selling first within each, as `rank` (these values) and this order.
TITLE, NAMES, ANYWHERE = 3, 2, 1
RELEVANCE = ("-rank", POPULARITY.desc())
# A page of a tier is first looked for among this many of the most popular books, walking the
# popularity index (a scan PostgreSQL can stop at): a common word fills a page there at once,
# whatever the catalog's size. Only when it does not are the tier's matches taken from its
# GIN index and sorted, which costs what they number, and is cheap for a rare word. Left to
# choose by itself, the planner walks for any word it believes common, and an estimate far
# off (a prefix it has no statistics for, a tier that excludes most of a word's matches)
# walked the whole index: about a second at a million books.
WALK = 5_000
# How long the bound of that walk is kept. Any bound gives the same results (a page found
# among the most popular books is the first page of all), so one a minute old does.
WALK_BOUND_SECONDS = 60.0
# How far a walk goes on for a search typed as far as a short last word
# (`_among_most_popular`).
FAR_WALK = 40_000
_walk_bounds: dict[tuple[str, int], tuple[float, int | None]] = {}


@dataclass(frozen=True)
class SearchQuery:
    """What a search looks for: an ISBN; or, on PostgreSQL, a tsquery (its SQL and parameters),
    None when no book can match; or, elsewhere, the words of `text`."""

    text: str
    isbn: str | None = None
    tsquery: tuple[str, list[str]] | None = None
    # Web-search syntax may exclude words: a match of the title alone proves nothing then.
    excludes: bool = False
    # The words searched for instead of a misspelt `text` ("lantern" for "lanturn").
    corrected: str | None = None


def book_search(books: QuerySet[BookListing], *, q: str) -> QuerySet[BookListing]:
    """Search title, subtitle, authors, description and ISBN: the matching books, annotated
    with their `rank` (higher is more relevant), which callers order by (`RELEVANCE`) when they
    were not asked for another order. An empty `q` is no search."""
    if not q.strip():
        return books
    return searched(books, query=search_query(books, q=q))


def search_query(books: QuerySet[BookListing], *, q: str) -> SearchQuery:
    """What to look for in `books` when asked for `q`.

    PostgreSQL: stored tsvectors. The last word matches as a prefix, for search as you type
    ("tolk" finds Tolkien); web-search syntax ("quoted phrases", -excluded, or) is honoured
    when used, though a search that only excludes words finds nothing. When that finds
    nothing, each word is corrected to the nearest word of the catalog's titles and authors
    (pg_trgm over their vocabulary), for misspellings ("lanturn", "tolkein"), and those are
    searched for. An ISBN, with or without hyphens, finds its book.
    Elsewhere (the embedded SQLite default): every word must appear, best-selling first.
    """
    q = q.strip()
    if isbn := _isbn(q):
        return SearchQuery(text=q, isbn=isbn)
    if connections[books.db].vendor != "postgresql":
        return SearchQuery(text=q)
    excludes = bool(_WEB_SEARCH_SYNTAX.search(q))
    tsquery = _tsquery(q)
    if tsquery is not None and excludes and not _looks_for_a_word(books.db, tsquery):
        return SearchQuery(text=q, excludes=excludes)
    corrected = None
    if tsquery is None or not _matches_any(books, tsquery):
        corrected = _corrected(books, q)
        tsquery = _tsquery(corrected) if corrected else None
    return SearchQuery(text=q, tsquery=tsquery, excludes=excludes, corrected=corrected)


def searched(books: QuerySet[BookListing], *, query: SearchQuery) -> QuerySet[BookListing]:
    """The books that match `query`, annotated with their `rank`."""
    if query.isbn:
        return books.filter(isbn=query.isbn).annotate(rank=Value(TITLE))
    if connections[books.db].vendor != "postgresql":
        condition = Q()
        for word in query.text.split():
            condition &= Q(search_text__icontains=word)
        return books.filter(condition).annotate(rank=Value(ANYWHERE))
    if query.tsquery is None:
        return books.none().annotate(rank=Value(ANYWHERE))
    sql, params = query.tsquery
    rank = (
        f"CASE WHEN title_vector @@ {sql} THEN {TITLE} "
        f"WHEN names_vector @@ {sql} THEN {NAMES} ELSE {ANYWHERE} END"
    )
    return books.filter(_matching("search_vector", query.tsquery)).annotate(
        rank=RawSQL(rank, params * 2, output_field=IntegerField())
    )


def ranked_page(books: QuerySet[Any, Any], *, query: SearchQuery, start: int, size: int) -> list:
    """Results `start` to `start + size` of a search in relevance order (`RELEVANCE`), of
    `books` as filtered otherwise (a values() query set gives dicts).

    The order `searched(...).order_by(*RELEVANCE)` gives, without ranking every match: on
    PostgreSQL each tier is a query of its own in best-selling order, which for a common word
    walks the popularity index and stops at the page's last book (docs/decisions/0013). Only a
    page past a whole tier counts that tier.
    """
    if query.tsquery is None:
        return list(searched(books, query=query).order_by(*RELEVANCE)[start : start + size])
    title, names, anywhere = (
        Q(_matching(vector, query.tsquery))
        for vector in ("title_vector", "names_vector", "search_vector")
    )
    # Every word in the title is every word in title and authors, and a match anywhere,
    # unless the search excludes a word (which the authors or the description may hold).
    also = anywhere if query.excludes else Q()
    tiers = [title & also, names & ~title & also, anywhere & ~names]
    short = _ends_in_short_prefix(query.tsquery)
    page: list = []
    before = 0  # books in the tiers before this one
    for condition in tiers:
        offset = max(0, start - before)
        tier = books.filter(condition)
        rows = _most_popular(tier, offset=offset, limit=size - len(page), short_prefix=short)
        page += rows
        if len(page) == size:
            break
        before += offset + len(rows) if rows or not offset else tier.count()
    return page


def _most_popular(
    books: QuerySet[Any, Any], *, offset: int, limit: int, short_prefix: bool = False
) -> list:
    """`books[offset:offset + limit]` in popularity order: looked for among the WALK most
    popular books first, then, when not all are there, among all of them."""
    rows = _among_most_popular(books, offset=offset, limit=limit, short_prefix=short_prefix)
    if rows is not None:
        return rows
    with _planner(books.db, "enable_indexscan"):  # no walk: matches from the GIN index
        return list(books.order_by(POPULARITY.desc())[offset : offset + limit])


def _among_most_popular(
    books: QuerySet[Any, Any], *, offset: int, limit: int, short_prefix: bool = False
) -> list | None:
    """`books[offset:offset + limit]` in popularity order when the WALK most popular books
    hold them all; None when they do not.

    With `short_prefix` (the query's last word is a prefix of one or two letters, `river h`,
    typed as you go, which matches thousands of the index's words): left to itself,
    PostgreSQL intersected all their GIN entries with the walk's range (63 ms at a million
    books, EXPLAIN ANALYZE) rather than walk its 5,000 books (7 ms), so the walk is forced.
    When it holds a quarter of the page or more, the rest is likely a little further on, so
    the walk goes on to the FAR_WALK most popular before the caller sorts every match
    (`river h`: 42 of 51 among the first 5,000; sorting its 15,426 title matches took
    105 ms)."""
    if short_prefix:
        with _planner(books.db, "enable_bitmapscan"):
            rows = _walked(books, offset=offset, limit=limit)
            if rows is not None and len(rows) < limit and 4 * len(rows) >= limit:
                rows = _walked(books, offset=offset, limit=limit, depth=FAR_WALK)
    else:
        rows = _walked(books, offset=offset, limit=limit)
    return rows if rows is not None and len(rows) == limit else None


def _ends_in_short_prefix(tsquery: tuple[str, list[str]] | None) -> bool:
    """Whether `_tsquery` made `tsquery` with a last word of one or two letters."""
    if tsquery is None or not tsquery[0].startswith("to_tsquery("):
        return False
    return bool(_SHORT_PREFIX.search(tsquery[1][0]))


_SHORT_PREFIX = re.compile(r"(?:^|\s)[^\W_]{1,2}:\*$")


def _walked(
    books: QuerySet[Any, Any], *, offset: int, limit: int, depth: int | None = None
) -> list | None:
    """`books[offset:offset + limit]` in popularity order among the `depth` (WALK) most
    popular books (a bounded walk of the popularity index), however few they hold; None when
    the catalog has no more than that."""
    bound = _walk_bound(books.db, depth or WALK)
    if bound is None:
        return None
    popular = books.alias(popularity=POPULARITY).filter(popularity__gte=bound)
    return list(popular.order_by(POPULARITY.desc())[offset : offset + limit])


def _walk_bound(db: str, depth: int) -> int | None:
    """POPULARITY of the `depth`-th most popular book; None when the catalog has no more."""
    now = time.monotonic()
    kept = _walk_bounds.get((db, depth))
    if kept is None or kept[0] < now:
        value = (
            BookListing.objects.using(db)
            .annotate(popularity=POPULARITY)
            .order_by(POPULARITY.desc())
            .values_list("popularity", flat=True)[depth - 1 : depth]
        )
        kept = (now + WALK_BOUND_SECONDS, next(iter(value), None))
        _walk_bounds[db, depth] = kept
    return kept[1]


@contextmanager
def _planner(db: str, setting: str) -> Iterator[None]:
    """One of the planner's kinds of plan turned off for the statements run meanwhile."""
    with connections[db].cursor() as cursor:
        cursor.execute(f"SET {setting} = off")
        try:
            yield
        finally:
            cursor.execute(f"RESET {setting}")


def _matches_any(books: QuerySet[BookListing], tsquery: tuple[str, list[str]]) -> bool:
    """Whether a search finds a book: among the most popular books first, where a common word
    is found at once (its whole entry in the GIN index took 30-48 ms to read at a million
    books), then through the index. Left to itself, the planner expects thousands of books for
    a word (a prefix above all) and reads the table until it meets the first, so a word no
    book has, a misspelling, read every row: 480-500 ms at a million books. Through the index,
    such a word costs nothing."""
    matched = books.filter(_matching("search_vector", tsquery))
    if _among_most_popular(matched.values("book_id"), offset=0, limit=1):
        return True
    # A short last prefix (`lanturn h`) reads the GIN entries of every word it begins, even
    # when the other words have none: 69 ms at a million books. No book has them all when
    # none has the others (unless those are stop words only, which the query drops).
    others = _without_short_prefix(tsquery)
    if others and _looks_for_a_word(books.db, others) and not _matches_any(books, others):
        return False
    with _planner(books.db, "enable_seqscan"):
        return matched.exists()


def _without_short_prefix(tsquery: tuple[str, list[str]]) -> tuple[str, list[str]] | None:
    """`tsquery` without its last word when that is a short prefix after other words."""
    if not _ends_in_short_prefix(tsquery):
        return None
    others = tsquery[1][0].rpartition(" & ")[0]
    return (tsquery[0], [others]) if others else None


def _looks_for_a_word(db: str, tsquery: tuple[str, list[str]]) -> bool:
    """Whether `tsquery` has a part an index can serve (PostgreSQL's `querytree`). One that
    only excludes words (`-book`, `the -book`: "the" is a stop word) matches every book
    without them, which only reading every book can find: a second at a million books, when
    few lack the word. Such a search finds nothing."""
    sql, params = tsquery
    with connections[db].cursor() as cursor:
        cursor.execute(f"SELECT querytree({sql}) NOT IN ('', 'T')", params)
        return cursor.fetchone()[0]


def _matching(vector: str, tsquery: tuple[str, list[str]]) -> RawSQL:
    """Whether the stored tsvector column `vector` matches `tsquery` (the columns' GIN
    indexes serve it as it is written here)."""
    sql, params = tsquery
    return RawSQL(f"{vector} @@ {sql}", params, output_field=BooleanField())


def _tsquery(q: str) -> tuple[str, list[str]] | None:
    """The tsquery of `q`, as SQL and its parameters; None when it has no word."""
    if _WEB_SEARCH_SYNTAX.search(q):
        return "websearch_to_tsquery('english', %s)", [q]
    words = re.findall(r"[^\W_]+", q)
    if not words:
        return None
    # Every word, the last one as a prefix (the word being typed).
    return "to_tsquery('english', %s)", [" & ".join([*words[:-1], words[-1] + ":*"])]


# For each word of the query, in order, the nearest word of the vocabulary, or NULL.
NEAREST_WORDS_SQL = """
SELECT (SELECT v.word FROM read_catalog_searchword v WHERE v.word %% q.word
        ORDER BY similarity(v.word, q.word) DESC, v.word LIMIT 1)
FROM unnest(%s::text[]) WITH ORDINALITY AS q(word, i) ORDER BY q.i
"""


def _corrected(books: QuerySet[BookListing], q: str) -> str | None:
    """The query's words, each that could be a word of the vocabulary replaced by the nearest
    one there is (SearchWord, pg_trgm similarity); others ("of", "2") stay as they are. None
    when a word has none near enough, or when nothing was corrected (the search for those
    words found nothing)."""
    words = re.findall(r"[^\W_]+", q.lower())[:MAX_CORRECTED_WORDS]
    wrong = [word for word in words if VOCABULARY_WORD.fullmatch(word)]
    if not wrong:
        return None
    with connections[books.db].cursor() as cursor:
        # The threshold of the index's operator (%), for this connection.
        cursor.execute(
            "SELECT set_config('pg_trgm.similarity_threshold', %s, false)", [str(TYPO_SIMILARITY)]
        )
        cursor.execute(NEAREST_WORDS_SQL, [wrong])
        nearest = dict(zip(wrong, (row[0] for row in cursor.fetchall()), strict=True))
    if None in nearest.values() or all(word == near for word, near in nearest.items()):
        return None
    return " ".join(nearest.get(word, word) for word in words)


# What pg_trgm takes trigrams from: a run of letters or digits. Between wildcards, one shorter
# than three characters gives none, and a LIKE pattern with no trigram reads the whole index
# (`...` took 1.8 s at a million books). A text without such a run suggests too much to be
# useful anyway.
_TRIGRAM_WORD = re.compile(r"[^\W_]{3,}")
# The look for titles among all books costs what the rows holding each word of the text
# number: a text of common words that no title holds (`book book book book`) read nearly every
# book, 0.6 s at a million. Past this budget, the suggestions are the titles the walk found.
SUGGEST_BUDGET = "50ms"


def book_suggestions(*, q: str, limit: int = 10) -> list[dict[str, object]]:
    """For a search box: titles and authors that contain `q` (case-insensitive), at most
    `limit`: titles of the best-selling books first, then up to 3 authors, those whose name
    starts with `q` first. Nothing for a `q` without three letters or digits in a row."""
    text = q.strip().lower()
    if not _TRIGRAM_WORD.search(text):
        return []
    people = [
        {"kind": "author", "text": name, "author_id": author_id}
        for author_id, name in author_candidates(text=text, limit=min(3, limit))
    ]
    titles = [
        {"kind": "title", "text": title, "book_id": book_id}
        for book_id, title in title_candidates(text=text, limit=limit - len(people))
    ]
    return titles + people


def title_candidates(*, text: str, limit: int) -> list[tuple[int, str]]:
    """(book_id, title) of the best-selling books whose title contains `text` (lower case).
    As a search's tiers are read (`_most_popular`): left to itself, the planner may walk the
    whole popularity index for a text no title has."""
    # lower(title) LIKE: the expression of the trigram index (migration 0019).
    titles = BookListing.objects.alias(lowered=Lower("title")).values_list("book_id", "title")
    containing = titles.filter(lowered__contains=text)
    if connections[titles.db].vendor != "postgresql":
        return list(containing.order_by(POPULARITY.desc())[:limit])
    # The walk without the trigram index: reading it is what costs most (below), five times
    # the walk for a text of common trigrams.
    with _planner(titles.db, "enable_bitmapscan"):
        walked = _walked(containing, offset=0, limit=limit)
    if walked is not None and len(walked) == limit:
        return walked
    # Among all books, the index is asked for each word's trigrams alone and the text is
    # checked on the rows it gives (strpos, which no index serves). The whole text's pattern
    # adds the trigrams of its words' edges (" le", "er "), each in a large share of all
    # titles: at a million books `bright letter comes` took 20.9 ms that way, 8.2 ms this.
    words = dict.fromkeys(_TRIGRAM_WORD.findall(text)) or [text]
    for word in words:
        titles = titles.filter(lowered__contains=word)
    found = titles.alias(at=StrIndex("lowered", Value(text))).filter(at__gt=0)
    try:
        with transaction.atomic(using=titles.db):
            # Matches from the GIN index, no walk, within the budget. Set for the transaction
            # (a cancelled statement rolls it back, and the settings with it) and put back
            # after: the caller's transaction may go on.
            with connections[titles.db].cursor() as cursor:
                cursor.execute(_LOOK_AMONG_ALL, [SUGGEST_BUDGET])
                before = cursor.fetchone()[:2]
            rows = list(found.order_by(POPULARITY.desc())[:limit])
            with connections[titles.db].cursor() as cursor:
                cursor.execute(_PUT_BACK, before)
            return rows
    except OperationalError as error:
        if not isinstance(error.__cause__, psycopg.errors.QueryCanceled):
            raise
        return walked or []


_LOOK_AMONG_ALL = """
SELECT current_setting('statement_timeout'), current_setting('enable_indexscan'),
       set_config('statement_timeout', %s, true), set_config('enable_indexscan', 'off', true)
"""
_PUT_BACK = """
SELECT set_config('statement_timeout', %s, true), set_config('enable_indexscan', %s, true)
"""


def author_candidates(*, text: str, limit: int) -> QuerySet[AuthorName, Any]:
    """(author_id, name) of authors whose name contains `text` (lower case): those whose name
    starts with it first, then by name."""
    authors = AuthorName.objects.alias(lowered=Lower("name")).filter(lowered__contains=text)
    starts = ExpressionWrapper(Q(lowered__startswith=text), output_field=BooleanField())
    return (
        authors.alias(starts=starts)
        .order_by("-starts", "name", "author_id")
        .values_list("author_id", "name")[:limit]
    )


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
