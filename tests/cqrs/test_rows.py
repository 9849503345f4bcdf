"""Rows by primary key with a statement written once (apps/cqrs/rows.py): what the ORM would
read, and locked when asked."""

from datetime import date

import psycopg
import pytest
from django.db import transaction

from apps.cqrs import runtime
from apps.cqrs.projectors import registry
from apps.cqrs.rows import rows_by_pk
from apps.read.orders.models import OrderSummary
from apps.write.catalog.models import Book
from apps.write.inventory.models import StockItem
from tests.conftest import another_session
from tests.factories import UserFactory, add_book, place_order, stocked_book

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "read"])


def fields(row) -> dict:
    return {f.attname: getattr(row, f.attname) for f in type(row)._meta.concrete_fields}


def test_the_rows_are_the_orms_with_their_python_types_in_key_order():
    first = add_book(title="First", price="12.50", published_on=date(2020, 5, 1))
    second = add_book(title="Second", price="7.00")
    found = rows_by_pk(Book, [second.pk, first.pk, 10**9])
    assert list(found) == [first.pk, second.pk]  # the unknown key is left out
    assert [fields(r) for r in found.values()] == [
        fields(b) for b in Book.objects.filter(pk__in=[first.pk, second.pk]).order_by("pk")
    ]
    assert found[first.pk].published_on == date(2020, 5, 1)
    assert not found[first.pk]._state.adding  # saved rows, as the ORM's are


@pytest.mark.parametrize("lock", [True, False])
def test_rows_read_with_lock_are_locked_until_the_transaction_ends(lock):
    book = stocked_book(on_hand=3)
    other = another_session("default", autocommit=True)
    lock_it = "SELECT 1 FROM inventory_stockitem WHERE book_id = %s FOR NO KEY UPDATE NOWAIT"
    with transaction.atomic():
        assert rows_by_pk(StockItem, [book.pk], lock=lock)[book.pk].on_hand == 3
        if lock:
            with pytest.raises(psycopg.errors.LockNotAvailable):
                other.execute(lock_it, [book.pk])
        else:
            other.execute(lock_it, [book.pk])
    other.execute(lock_it, [book.pk])  # free again
    other.close()


def test_json_columns_are_decoded_as_the_orms_are():
    order = place_order(UserFactory(), (stocked_book(on_hand=3), 2))
    runtime.catch_up(registry.get("orders.history"))
    found = rows_by_pk(OrderSummary, [order.pk])[order.pk]
    assert fields(found) == fields(OrderSummary.objects.get(pk=order.pk))
    assert found.lines[0]["quantity"] == 2


def test_with_skip_locked_the_rows_another_session_holds_are_left_out():
    held, free = stocked_book(on_hand=3), stocked_book(on_hand=4)
    other = another_session("default", autocommit=False)
    other.execute(
        "SELECT 1 FROM inventory_stockitem WHERE book_id = %s FOR NO KEY UPDATE", [held.pk]
    )
    with transaction.atomic():
        found = rows_by_pk(StockItem, [held.pk, free.pk], skip_locked=True)
        assert list(found) == [free.pk]
        # ... and the one it read is locked until this transaction ends
        with pytest.raises(psycopg.errors.LockNotAvailable):
            other.execute(
                "SELECT 1 FROM inventory_stockitem WHERE book_id = %s FOR NO KEY UPDATE NOWAIT",
                [free.pk],
            )
    other.close()
