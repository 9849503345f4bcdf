"""What the stock says happened. Every event carries the units on hand after it."""

import dataclasses

from apps.cqrs.events import Event


@dataclasses.dataclass(frozen=True, kw_only=True)
class StockEvent(Event, abstract=True):
    aggregate_type = "stock"
    aggregate_id_field = "book_id"
    book_id: int
    on_hand: int  # after the change


@dataclasses.dataclass(frozen=True, kw_only=True)
class StockReceived(StockEvent):
    quantity: int
    note: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class StockAdjusted(StockEvent):
    change: int
    reason: str
    note: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class StockReserved(StockEvent):
    quantity: int
    order_id: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class StockReleased(StockEvent):
    quantity: int
    order_id: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class BackorderPolicyChanged(StockEvent):
    allow_backorder: bool
