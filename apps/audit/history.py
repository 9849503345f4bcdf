"""An aggregate's history from the log, with its state after each event: what an order, a book
or a stock item looked like at any past moment."""

from collections.abc import Callable
from typing import Any

from apps.cqrs.models import DomainEvent

State = dict[str, Any]
ORDER_STATUS = {
    "OrderPlaced": "placed",
    "OrderPaid": "paid",
    "OrderShipped": "shipped",
    "OrderDelivered": "delivered",
    "OrderCancelled": "cancelled",
}
# How one event changes the state; an event type not listed merges its payload in.
REDUCERS: dict[str, Callable[[State, dict], State]] = {
    "PriceChanged": lambda s, p: {**s, "price": p["new_price"]},
    "BookDetailsChanged": lambda s, p: {**s, **p["changes"]},
    "BookDiscontinued": lambda s, p: {**s, "discontinued": True},
    "BookReinstated": lambda s, p: {**s, "discontinued": False},
    "StockReceived": lambda s, p: {**s, "on_hand": p["on_hand"]},
    "StockAdjusted": lambda s, p: {**s, "on_hand": p["on_hand"]},
    "StockReserved": lambda s, p: {**s, "on_hand": p["on_hand"]},
    "StockReleased": lambda s, p: {**s, "on_hand": p["on_hand"]},
    "BackorderPolicyChanged": lambda s, p: {
        **s,
        "on_hand": p["on_hand"],
        "allow_backorder": p["allow_backorder"],
    },
    "OrderPlaced": lambda s, p: {
        **s,
        "status": "placed",
        "customer_id": p["customer_id"],
        "total": p["total"],
        "lines": [f"{x['quantity']} × {x['title']} at {x['unit_price']}" for x in p["lines"]],
        "backordered": sum(x["backordered"] for x in p["lines"]),
        "shipping_address": p["shipping_address"],
    },
    "OrderPaid": lambda s, p: {**s, "status": "paid", "paid": p["amount"]},
    "PaymentDeclined": lambda s, p: {**s, "payment": f"declined: {p['reason']}"},
    "BackorderFilled": lambda s, p: {
        **s,
        "backordered": max(s.get("backordered", 0) - p["quantity"], 0),
    },
    "OrderShipped": lambda s, p: {**s, "status": "shipped"},
    "OrderDelivered": lambda s, p: {**s, "status": "delivered"},
    "OrderCancelled": lambda s, p: {
        **s,
        "status": "cancelled",
        "refunded": p["refunded"],
        "cancel_reason": p["reason"],
        "backordered": 0,
    },
}


def _merge(state: State, payload: dict) -> State:
    return {**state, **payload}


def history(
    *, aggregate_type: str, aggregate_id: str, until: int | None = None
) -> list[tuple[DomainEvent, State]]:
    """Each event of the aggregate, oldest first, with the state right after it."""
    events = DomainEvent.objects.filter(aggregate_type=aggregate_type, aggregate_id=aggregate_id)
    if until is not None:
        events = events.filter(position__lte=until)
    state: State = {}
    steps = []
    for event in events.order_by("aggregate_version"):
        state = REDUCERS.get(event.event_type, _merge)(state, event.current_payload)
        steps.append((event, state))
    return steps
