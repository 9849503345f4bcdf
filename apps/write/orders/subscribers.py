"""Process managers of the order flow. Each is idempotent per event (see Subscriber)."""

from collections.abc import Sequence
from contextlib import suppress

from django.contrib.auth import get_user_model

from apps.contracts.inventory import (
    BackorderPolicyChanged,
    StockAdjusted,
    StockReceived,
    StockReleased,
)
from apps.contracts.orders import (
    OrderCancelled,
    OrderEvent,
    OrderPlaced,
    OrderShipped,
    PaymentDeclined,
)
from apps.cqrs.exceptions import Conflict
from apps.cqrs.models import DomainEvent
from apps.cqrs.projectors import Subscriber, register
from apps.write.orders import services
from apps.write.orders.emails import send_after_commit
from apps.write.orders.models import Notification


@register
class PaymentCompensation(Subscriber):
    """A declined payment cancels its order and puts its stock back."""

    name = "orders.payment_compensation"
    handles = frozenset({PaymentDeclined})
    parks_by_key = True  # one order's compensation never waits for another's

    def apply(self, event: DomainEvent) -> bool:
        # Conflict: already cancelled (a repeat of this event), or beyond cancelling.
        with self.caused_by(event), suppress(Conflict):
            services.order_cancel(
                actor=services.PAYMENT_COMPENSATION,
                order_id=event.data.order_id,
                reason="Payment declined",
            )
        return True


@register
class BackorderFulfilment(Subscriber):
    """Units coming back to the shelf go to open backorders first, oldest first."""

    name = "orders.backorder_fulfilment"
    handles = frozenset({StockReceived, StockAdjusted, StockReleased, BackorderPolicyChanged})

    def apply_batch(self, events: Sequence[DomainEvent]) -> int | None:
        # Almost no stock event meets an open backorder: one query for the whole batch finds
        # the books that have any, instead of a command per event.
        stocked = [e for e in events if e.data.on_hand > 0]
        waiting = services.books_with_open_backorders(book_ids={e.data.book_id for e in stocked})
        for applied, event in enumerate(events, 1):
            if event in stocked and event.data.book_id in waiting and self.fill(event):
                return applied
        return None

    def fill(self, event: DomainEvent) -> bool:
        with self.caused_by(event):
            return (
                services.backorders_fill(
                    actor=services.BACKORDER_FULFILMENT, book_id=event.data.book_id
                )
                > 0
            )


@register
class OrderEmails(Subscriber):
    """Tells the customer their order was placed, shipped or cancelled."""

    name = "orders.emails"
    handles = frozenset({OrderPlaced, OrderShipped, OrderCancelled})
    parks_by_key = True  # an event that cannot be handled holds up only its own order's mails
    SUBJECTS = {
        OrderPlaced: "We have your order {order_id}",
        OrderShipped: "Order {order_id} is on its way",
        OrderCancelled: "Order {order_id} was cancelled",
    }

    def apply_batch(self, events: Sequence[DomainEvent]) -> None:
        # Unlike the other subscribers, nothing here appends to the log, and each mail goes
        # only once the batch has committed (emails.py). So the batch shares one transaction,
        # with three statements in all where each event took three of its own and a
        # transaction. A failure rolls the whole batch back unsent, and the runtime then goes
        # one event at a time to find the one that failed.
        customers = get_user_model().objects.in_bulk({e.data.customer_id for e in events})
        # Runners of a subscriber take turns (apps/cqrs/runtime.py), so a plain check is enough.
        recorded = set(
            Notification.objects.filter(event_id__in=[e.event_id for e in events]).values_list(
                "event_id", flat=True
            )
        )
        notifications = []
        for event in events:
            data = event.data
            customer = customers.get(data.customer_id)
            if customer is None:
                raise LookupError(f"No customer {data.customer_id} for {event}")
            if customer.email and event.event_id not in recorded:
                notifications.append(
                    Notification(
                        event_id=event.event_id,
                        recipient=customer.email,
                        subject=self.SUBJECTS[type(data)].format(order_id=data.order_id),
                        body=self.body(data),
                    )
                )
        Notification.objects.bulk_create(notifications)
        send_after_commit(notifications=notifications)

    @staticmethod
    def body(data: OrderEvent) -> str:
        match data:
            case OrderPlaced():
                lines = "\n".join(
                    f"  {line.quantity} × {line.title}  {line.unit_price}" for line in data.lines
                )
                return f"Thank you for your order.\n\n{lines}\n\nTotal: {data.total}\n"
            case OrderCancelled():
                return f"Your order was cancelled. {data.reason}\nRefunded: {data.refunded}\n"
        return "Your books are on their way."
