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
