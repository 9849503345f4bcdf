"""What each read model should say, computed from the write tables, and the differences."""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any

from django.db.models import Q, Sum

from apps.cqrs import runtime
from apps.cqrs.models import DomainEvent
from apps.cqrs.projectors import registry
from apps.read.catalog.models import BookListing, availability_of
from apps.read.orders.models import OrderSummary
from apps.write.catalog.models import Book
from apps.write.inventory.models import StockItem
from apps.write.orders.models import Order, Payment


@dataclass(frozen=True)
class Difference:
    read_model: str
    key: int
    field: str
    read: object
    write: object

    def __str__(self) -> str:
        return (
            f"{self.read_model} {self.key}: {self.field} is {self.read!r}, should be {self.write!r}"
        )


def _compare(
    read_model: str,
    expected: Mapping[int, Mapping[str, Any]],
    actual: Mapping[int, Mapping[str, Any]],
) -> Iterator[Difference]:
    for key in sorted(expected.keys() | actual.keys()):
        if key not in actual:
            yield Difference(read_model, key, "row", "missing", "present")
        elif key not in expected:
            yield Difference(read_model, key, "row", "present", "missing")
        else:
            for field, value in expected[key].items():
                if actual[key][field] != value:
                    yield Difference(read_model, key, field, actual[key][field], value)


def book_listing_differences() -> list[Difference]:
    stock = {s.book_id: s for s in StockItem.objects.all()}
    expected = {}
    for book in Book.objects.all():
        item = stock.get(book.pk)
        on_hand, backorder = (item.on_hand, item.allow_backorder) if item else (0, False)
        expected[book.pk] = {
            "title": book.title,
            "price": book.price,
            "discontinued": book.discontinued,
            "cover_small": book.cover_small,
            "cover_large": book.cover_large,
            "quantity_available": on_hand,
            "availability": availability_of(
                on_hand=on_hand, allow_backorder=backorder, discontinued=book.discontinued
            ),
        }
    actual = {
        row["book_id"]: row
        for row in BookListing.objects.values("book_id", *next(iter(expected.values()), {}))
    }
    return list(_compare("book listing", expected, actual))


def order_summary_differences() -> list[Difference]:
    refunded = dict(
        Payment.objects.filter(status=Payment.Status.REFUNDED)
        .values("order_id")
        .annotate(total=Sum("amount"))
        .values_list("order_id", "total")
    )
    expected = {
        order.pk: {
            "status": order.status,
            "total": order.total,
            "refunded": refunded.get(order.pk, Decimal("0.00")),
            "customer_id": order.customer_id,
        }
        for order in Order.objects.all()
    }
    actual = {
        row["order_id"]: row
        for row in OrderSummary.objects.values(
            "order_id", "status", "total", "refunded", "customer_id"
        )
    }
    return list(_compare("order summary", expected, actual))


def audit() -> list[Difference]:
    """Catch the projectors up, then compare each read model with the write tables."""
    for name in ("catalog.book_listing", "orders.history"):
        runtime.catch_up(registry.get(name))
    return [*book_listing_differences(), *order_summary_differences()]


def repair(differences: list[Difference]) -> None:
    """Rebuild the rows the differences are in, from the log."""
    books = sorted({d.key for d in differences if d.read_model == "book listing"})
    listing = registry.get("catalog.book_listing")
    for book_id in books:
        runtime.replay_rows(
            listing,
            events=DomainEvent.objects.filter(
                Q(aggregate_type__in=["book", "stock"], aggregate_id=str(book_id))
                | Q(event_type="AuthorRenamed")
            ),
            delete=partial(_delete_listing, book_id),
        )
    if any(d.read_model == "order summary" for d in differences):
        # Per-customer totals span a customer's orders: the order history is rebuilt whole.
        runtime.rebuild(registry.get("orders.history"))


def _delete_listing(book_id: int) -> None:
    BookListing.objects.filter(book_id=book_id).delete()
