"""Order events without orders, for measuring and testing the order-side projections at scale:
the OrderPlaced and OrderPaid events the services would record for `orders` orders of
`orders // 4` customers, appended with COPY. Nothing in the write tables stands behind them, so
they belong in benchmark and test databases only; subscribers (e-mails) must not read them."""

from collections.abc import Iterator
from decimal import Decimal

from django.db import transaction

from apps.contracts.orders import OrderPaid, OrderPlaced, PlacedLine
from apps.cqrs.events import Event
from apps.cqrs.log import copy_new_aggregates


def _events(orders: int) -> Iterator[tuple[Event, str]]:
    for order_id in range(1, orders + 1):
        ids = {"order_id": order_id, "customer_id": 1 + order_id % max(orders // 4, 1)}
        lines = [
            PlacedLine(
                line_id=order_id * 10 + i,
                book_id=1 + (order_id * 7 + i) % 500,
                title=f"Book {i}",
                unit_price=Decimal("12.50"),
                quantity=1 + i,
                backordered=0,
            )
            for i in range(2)
        ]
        total = Decimal("37.50")
        yield (
            OrderPlaced(**ids, lines=lines, total=total, shipping_address="1 Main St"),
            "orders.place",
        )
        paid = OrderPaid(
            **ids, amount=total, payment_id=order_id, payment_reference=f"r{order_id}",
            card_last4="4242",
        )  # fmt: skip
        yield paid, "orders.pay"


def copy_order_events(*, orders: int) -> int:
    """Append the events of `orders` synthetic orders; returns how many were written."""
    with transaction.atomic():
        return copy_new_aggregates(_events(orders))
