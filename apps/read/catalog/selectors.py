from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db import connections
from django.db.models import Q, QuerySet

from apps.read.catalog.models import BookListing

SEARCH_CONFIG = "english"
# Must match the expression of the GIN index (migrations/0005_listing_search_index.py) for
# PostgreSQL to use it.
SEARCH_VECTOR = SearchVector("search_text", config=SEARCH_CONFIG)


def book_listings() -> QuerySet[BookListing]:
    return BookListing.objects.all()


def book_listing_get(*, book_id: int) -> BookListing:
    return BookListing.objects.get(book_id=book_id)


def book_search(books: QuerySet[BookListing], *, q: str) -> QuerySet[BookListing]:
    """Full-text search over title, subtitle, authors and ISBN.

    PostgreSQL: web-search syntax ("quoted phrases", -excluded, or) against an indexed tsvector.
    Elsewhere (the embedded SQLite default): every word must appear.
    """
    q = q.strip()
    if not q:
        return books
    if connections[books.db].vendor == "postgresql":
        query = SearchQuery(q, config=SEARCH_CONFIG, search_type="websearch")
        return books.annotate(search=SEARCH_VECTOR).filter(search=query)
    condition = Q()
    for word in q.split():
        condition &= Q(search_text__icontains=word)
    return books.filter(condition)


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
