"""What the catalog listing's table holds besides its rows: each index is there for a query."""

import pytest
from django.db import IntegrityError, connections, router, transaction

from apps.read.catalog.models import BookListing

pytestmark = pytest.mark.django_db(databases=["default", "read"])


def listing(book_id: int, isbn: str) -> BookListing:
    return BookListing.objects.create(
        book_id=book_id, title="Kindred", isbn=isbn, format="paperback", price=9, position=1
    )


def test_an_isbn_is_listed_once_without_an_index_for_prefix_searches():
    alias = router.db_for_write(BookListing)
    listing(1, "9780807083697")
    with pytest.raises(IntegrityError), transaction.atomic(using=alias):
        listing(2, "9780807083697")

    # Every order writes its books' rows in each index: none for LIKE 'prefix%' (0021).
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexdef LIKE %s",
            [BookListing._meta.db_table, "%pattern_ops%"],
        )
        assert cursor.fetchall() == []


def vectors(book_id: int) -> tuple[str, str, str]:
    with connections[router.db_for_read(BookListing)].cursor() as cursor:
        cursor.execute(
            "SELECT title_vector::text, names_vector::text, search_vector::text "
            "FROM read_catalog_booklisting WHERE book_id = %s",
            [book_id],
        )
        return cursor.fetchone()


def test_the_search_vectors_follow_the_texts_and_nothing_else_writes_them():
    alias = router.db_for_write(BookListing)
    row = BookListing.objects.create(
        book_id=1,
        title="Kindred",
        subtitle="A Novel",
        author_names="Octavia Butler",
        description="Time travel to Maryland",
        isbn="9780807083697",
        format="paperback",
        price=9,
        position=1,
    )
    title, names, anywhere = vectors(1)
    assert title == "'kindr':1 'novel':3"
    # The names follow the title's words; every text is in the search vector, weighted.
    assert names == "'butler':5 'kindr':1 'novel':3 'octavia':4"
    assert anywhere == (
        "'9780807083697':10A 'butler':5B 'kindr':1A 'maryland':9C 'novel':3A 'octavia':4B "
        "'time':6C 'travel':7C"
    )

    # An order changes the units sold only: the vectors stay; one written by hand is refused.
    row.units_sold = 3
    row.save()
    with connections[alias].cursor() as cursor:
        cursor.execute("UPDATE read_catalog_booklisting SET title_vector = 'forged'")
    assert vectors(1) == (title, names, anywhere)

    row.title = "Dawn"
    row.save()
    title, names, _ = vectors(1)
    assert (title, names) == ("'dawn':1 'novel':3", "'butler':5 'dawn':1 'novel':3 'octavia':4")
