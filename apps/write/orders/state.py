"""The order's state machine: which action may follow which status."""

from apps.cqrs.exceptions import Conflict
from apps.write.orders.models import Order

S = Order.Status
ALLOWED: dict[str, set[str]] = {
    "pay": {S.PLACED},
    "ship": {S.PAID},
    "deliver": {S.SHIPPED},
    # A customer may cancel until the parcel leaves; staff until it arrives.
    "cancel_by_customer": {S.PLACED, S.PAID},
    "cancel_by_staff": {S.PLACED, S.PAID, S.SHIPPED},
}
VERBS = {
    "pay": "pay for",
    "ship": "ship",
    "deliver": "deliver",
    "cancel_by_customer": "cancel",
    "cancel_by_staff": "cancel",
}


def ensure_allowed(order: Order, action: str) -> None:
    if order.status not in ALLOWED[action]:
        raise Conflict(
            f"Cannot {VERBS[action]} order {order.pk}: it is {order.get_status_display().lower()}."
        )
