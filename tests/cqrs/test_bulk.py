"""Rows written in bulk read back as the ORM writes them."""

from datetime import date
from decimal import Decimal

import pytest

from apps.cqrs.bulk import insert_rows, new_row, save_rows
from apps.read.catalog.models import Availability, BookListing
from apps.write.orders.models import Order, OrderLine
from tests.factories import UserFactory, stocked_book

pytestmark = pytest.mark.django_db(databases=["default", "read"])


def listing(book_id: int, **changes) -> BookListing:
    fields = {
        "title": "Ünïcode “quotes”\ttab\nnewline \\ backslash",
        "isbn": f"9780000{book_id:06d}",
        "format": "paperback",
        "language": "fr",
        "published_on": date(1999, 12, 31),
        "price": Decimal("1234.50"),
        "authors": [{"id": 7, "name": "Zoë Ōtsuka"}, {"id": 8, "name": 'A "quoted" name'}],
        "author_names": 'Zoë Ōtsuka, A "quoted" name',
        "discontinued": True,
        "quantity_available": -3,
        "availability": Availability.BACKORDER,
        "position": 2**40,
        "document": '{"id":1}',
    }
    return BookListing(book_id=book_id, **{**fields, **changes})


def columns(row) -> dict:
    return {f.attname: getattr(row, f.attname) for f in type(row)._meta.concrete_fields}


def stored(book_id: int) -> dict:
    row = BookListing.objects.filter(book_id=book_id).values().get()
    del row["book_id"], row["isbn"]
    return row


@pytest.mark.parametrize("published_on", [date(1999, 12, 31), "1999-12-31", None])
def test_rows_copied_as_new_read_back_as_the_orm_saves_them(published_on):
    # New rows go through COPY with values as the projector holds them (a date may still be
    # the ISO text of an event's payload); the ORM converts each field before it writes
    save_rows(
        BookListing,
        [listing(1, published_on=published_on)],
        new={1},
        update_fields=[],
        using="read",
    )
    saved = listing(2, published_on=published_on)
    saved.save(using="read")
    assert stored(1) == stored(2)
    assert stored(1)["authors"][0]["name"] == "Zoë Ōtsuka"


def test_a_new_row_is_what_the_model_makes_with_the_same_values():
    values = {"book_id": 3, "title": "Given", "isbn": "9780000000033", "price": 1, "position": 5}
    made, fast = BookListing(**values), new_row(BookListing, **values)
    fields = [f.attname for f in BookListing._meta.concrete_fields]
    assert [getattr(fast, f) for f in fields] == [getattr(made, f) for f in fields]
    assert (fast.units_sold, fast.availability) == (0, Availability.OUT)  # the defaults
    assert (fast._state.adding, fast._state.db) == (True, None)
    # A mutable default is the row's own, not shared between rows
    assert new_row(BookListing, book_id=4).authors is not fast.authors
    fast.save(using="read")
    assert BookListing.objects.get(book_id=3).title == "Given"


@pytest.mark.parametrize("published_on", [date(1999, 12, 31), "1999-12-31", None])
def test_rows_written_over_stored_ones_read_back_as_the_orm_saves_them(published_on):
    save_rows(BookListing, [listing(1)], new={1}, update_fields=[], using="read")
    fields = [f.name for f in BookListing._meta.concrete_fields if f.name != "book_id"]
    changed = listing(1, title="Changed", published_on=published_on)
    save_rows(BookListing, [changed], new=set(), update_fields=fields, using="read")
    listing(2, title="Changed", published_on=published_on).save(using="read")
    assert stored(1) == stored(2)


def test_more_stored_rows_than_one_statement_can_carry_are_all_written():
    # PostgreSQL takes at most 65,535 parameters in a statement
    columns = len(BookListing._meta.concrete_fields)
    ids = range(10, 10 + 65_535 // columns + 1)
    save_rows(BookListing, [listing(i) for i in ids], new=set(ids), update_fields=[], using="read")
    changed = [listing(i, title=f"Changed {i}") for i in ids]
    save_rows(BookListing, changed, new=set(), update_fields=["title"], using="read")
    assert BookListing.objects.filter(title__startswith="Changed").count() == len(ids)


def test_inserted_rows_are_what_the_orm_inserts_with_their_keys_and_timestamps():
    customer, book = UserFactory(), stocked_book(on_hand=3)
    made = Order(customer_id=customer.pk, total="12.50", shipping_address="Here")
    insert_rows([made])
    assert made.pk is not None
    assert not made._state.adding
    assert made.placed_at is not None  # auto_now_add, as save() sets it
    orm = Order.objects.create(customer_id=customer.pk, total="12.50", shipping_address="Here")
    skip = {"id", "placed_at", "updated_at"}
    assert {k: v for k, v in columns(Order.objects.get(pk=made.pk)).items() if k not in skip} == {
        k: v for k, v in columns(Order.objects.get(pk=orm.pk)).items() if k not in skip
    }
    lines = [
        OrderLine(order=made, book=book, title=f"Line {n}", unit_price="5.00", quantity=n)
        for n in (1, 2, 3)
    ]
    insert_rows(lines)
    # Each row has the key the database gave it, in the order given
    assert [OrderLine.objects.get(pk=line.pk).quantity for line in lines] == [1, 2, 3]
