"""Inventory commands. Stock never goes below zero: reservations are conditional updates under a
row lock, and a CHECK constraint backs them. Callers that lock several stock rows lock them in
book id order (`stock_lock`), after any order rows, so that commands cannot deadlock."""

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import connection

from apps.contracts.inventory import (
    BackorderPolicyChanged,
    StockAdjusted,
    StockReceived,
    StockReleased,
    StockReserved,
)
from apps.cqrs.actors import SystemActor
from apps.cqrs.commands import command
from apps.cqrs.exceptions import Conflict
from apps.cqrs.log import record
from apps.cqrs.rows import rows_by_pk
from apps.write.catalog.models import Book
from apps.write.inventory.models import StockItem

MAX_UNITS = 100_000
ADJUSTMENT_REASONS = {"count_correction": "Count correction", "damage": "Damaged", "lost": "Lost"}


def _validate_units(quantity: int, field: str = "quantity") -> None:
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise ValidationError({field: "Enter a whole number."})
    if not 1 <= quantity <= MAX_UNITS:
        raise ValidationError({field: f"Enter a number from 1 to {MAX_UNITS}."})


def stock_lock(book_ids: Iterable[int]) -> dict[int, StockItem]:
    """Lock the stock rows of these books, creating missing ones, in book id order."""
    ids = sorted(set(book_ids))
    locked = _lock_rows(ids)
    if len(locked) < len(ids):  # books never stocked: one query in the usual case, not three
        new = [i for i in ids if i not in locked]
        known = set(Book.objects.filter(pk__in=new).values_list("pk", flat=True))
        unknown = [i for i in new if i not in known]
        if unknown:
            raise ValidationError(
                {"book_id": f"Unknown book id(s): {', '.join(map(str, unknown))}."}
            )
        StockItem.objects.bulk_create([StockItem(book_id=i) for i in new], ignore_conflicts=True)
        locked = _lock_rows(ids)
    return locked


def _lock_rows(ids: list[int]) -> dict[int, StockItem]:
    return rows_by_pk(StockItem, ids, lock=True)


_CHANGE_ON_HAND = f"""
UPDATE {StockItem._meta.db_table} SET on_hand = on_hand + %(change)s
WHERE book_id = %(book_id)s AND on_hand + %(change)s >= 0 RETURNING on_hand
"""


def _change_on_hand(*, book_id: int, change: int) -> int | None:
    """Add `change` to the shelf unless that would take it below zero; the new count, or None
    when refused. One statement: the ORM's update() cannot return the count, and reading it
    back cost a second round trip on every order."""
    with connection.cursor() as cursor:
        cursor.execute(_CHANGE_ON_HAND, {"change": change, "book_id": book_id})
        row = cursor.fetchone()
    return None if row is None else int(row[0])


@command("inventory.stock_receive")
def stock_receive(
    *, actor: AbstractBaseUser | SystemActor | None, book_id: int, quantity: int, note: str = ""
) -> StockItem:
    _validate_units(quantity)
    item = stock_lock([book_id])[book_id]
    item.on_hand += quantity
    item.save(update_fields=["on_hand", "updated_at"])
    record(StockReceived(book_id=book_id, quantity=quantity, on_hand=item.on_hand, note=note))
    return item


@command("inventory.stock_adjust")
def stock_adjust(
    *,
    actor: AbstractBaseUser | SystemActor | None,
    book_id: int,
    change: int,
    reason: str,
    note: str = "",
) -> StockItem:
    if reason not in ADJUSTMENT_REASONS:
        raise ValidationError({"reason": f"Choose one of: {', '.join(ADJUSTMENT_REASONS)}."})
    if change == 0 or abs(change) > MAX_UNITS:
        raise ValidationError({"change": f"Enter a non-zero change of at most {MAX_UNITS}."})
    item = stock_lock([book_id])[book_id]
    if item.on_hand + change < 0:
        raise Conflict(f"Only {item.on_hand} on hand: cannot take {-change} off.")
    item.on_hand += change
    item.save(update_fields=["on_hand", "updated_at"])
    record(
        StockAdjusted(
            book_id=book_id, change=change, reason=reason, note=note, on_hand=item.on_hand
        )
    )
    return item


@command("inventory.stock_set_backorders")
def stock_set_backorders(
    *, actor: AbstractBaseUser | SystemActor | None, book_id: int, allowed: bool
) -> StockItem:
    item = stock_lock([book_id])[book_id]
    if item.allow_backorder != allowed:
        item.allow_backorder = allowed
        item.save(update_fields=["allow_backorder", "updated_at"])
        record(
            BackorderPolicyChanged(book_id=book_id, allow_backorder=allowed, on_hand=item.on_hand)
        )
    return item


@command("inventory.stock_reserve")
def stock_reserve(
    *, actor: AbstractBaseUser | SystemActor | None, book_id: int, quantity: int, order_id: int
) -> None:
    """Take `quantity` units off the shelf for an order, or refuse with Conflict."""
    on_hand = _change_on_hand(book_id=book_id, change=-quantity)
    if on_hand is None:
        raise Conflict("Not enough stock.")
    record(StockReserved(book_id=book_id, quantity=quantity, order_id=order_id, on_hand=on_hand))


@command("inventory.stock_release")
def stock_release(
    *, actor: AbstractBaseUser | SystemActor | None, book_id: int, quantity: int, order_id: int
) -> None:
    """Put units reserved for an order back on the shelf."""
    on_hand = _change_on_hand(book_id=book_id, change=quantity)
    if on_hand is None:
        raise Conflict("This book has no stock to put units back to.")
    record(StockReleased(book_id=book_id, quantity=quantity, order_id=order_id, on_hand=on_hand))
