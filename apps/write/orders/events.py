import dataclasses
import datetime
from decimal import Decimal

from apps.cqrs.events import Event


@dataclasses.dataclass(frozen=True, kw_only=True)
class OrderEvent(Event):
    aggregate_type = "order"
    aggregate_id_field = "order_id"
    order_id: int
    customer_id: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class OrderPlaced(OrderEvent):
    # [{"line_id", "book_id", "title", "unit_price", "quantity", "backordered"}]
    lines: list[dict]
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
    # [{"book_id", "quantity"}]: units put back on the shelf
    released: list[dict]
    # [{"book_id", "title", "quantity"}]: what the order had sold, for sales figures
    lines: list[dict]
    placed_at: datetime.datetime
