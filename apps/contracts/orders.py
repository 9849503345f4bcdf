"""What the order flow says happened."""

import dataclasses
import datetime
from decimal import Decimal

from apps.cqrs.events import Event


@dataclasses.dataclass(frozen=True, kw_only=True)
class PlacedLine:
    line_id: int
    book_id: int
    title: str
    unit_price: Decimal
    quantity: int
    backordered: int  # units of `quantity` not on the shelf when ordered


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReleasedUnits:
    """Units a cancelled order put back on the shelf."""

    book_id: int
    quantity: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class SoldLine:
    """What a cancelled order had sold, for sales figures."""

    book_id: int
    title: str
    quantity: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class OrderEvent(Event, abstract=True):
    aggregate_type = "order"
    aggregate_id_field = "order_id"
    order_id: int
    customer_id: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class OrderPlaced(OrderEvent):
    lines: list[PlacedLine]
    total: Decimal
    shipping_address: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class OrderPaid(OrderEvent):
    amount: Decimal
    payment_id: int
    payment_reference: str
    card_last4: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class PaymentDeclined(OrderEvent):
    amount: Decimal
    payment_id: int
    card_last4: str
    reason: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class PaymentRefunded(OrderEvent):
    """The gateway has returned a payment's money. `paid_order` is false for a payment the
    gateway approved after its order no longer wanted it (cancelled, or paid by another): it
    never paid the order, and the refund undoes it."""

    amount: Decimal
    payment_id: int
    refund_reference: str
    paid_order: bool


@dataclasses.dataclass(frozen=True, kw_only=True)
class BackorderFilled(OrderEvent):
    line_id: int
    book_id: int
    quantity: int
    still_backordered: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class OrderShipped(OrderEvent):
    pass


@dataclasses.dataclass(frozen=True, kw_only=True)
class OrderDelivered(OrderEvent):
    pass


@dataclasses.dataclass(frozen=True, kw_only=True)
class OrderCancelled(OrderEvent):
    reason: str
    by_staff: bool
    refunded: Decimal
    released: list[ReleasedUnits]
    lines: list[SoldLine]
    placed_at: datetime.datetime
