"""Process managers of the order flow. Each is idempotent per event (see Subscriber)."""

from contextlib import suppress

from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction

from apps.cqrs.exceptions import Conflict
from apps.cqrs.models import DomainEvent
from apps.cqrs.projectors import Subscriber, register
from apps.write.orders import services
from apps.write.orders.models import NotificationSent


@register
class PaymentCompensation(Subscriber):
    """A declined payment cancels its order and puts its stock back."""

    name = "orders.payment_compensation"
    handles = frozenset({"PaymentDeclined"})

    def apply(self, event: DomainEvent) -> None:
        # Conflict: already cancelled (a repeat of this event), or beyond cancelling.
        with self.caused_by(event), suppress(Conflict):
            services.order_cancel(
                actor=None, order_id=event.payload["order_id"], reason="Payment declined"
            )


@register
class BackorderFulfilment(Subscriber):
    """Units coming back to the shelf go to open backorders first, oldest first."""

    name = "orders.backorder_fulfilment"
    handles = frozenset(
        {"StockReceived", "StockAdjusted", "StockReleased", "BackorderPolicyChanged"}
    )

    def apply(self, event: DomainEvent) -> None:
        if event.payload["on_hand"] > 0:
            with self.caused_by(event):
                services.backorders_fill(actor=None, book_id=event.payload["book_id"])


@register
class OrderEmails(Subscriber):
    """Tells the customer their order was placed, shipped or cancelled."""

    name = "orders.emails"
    handles = frozenset({"OrderPlaced", "OrderShipped", "OrderCancelled"})
    SUBJECTS = {
        "OrderPlaced": "We have your order {order_id}",
        "OrderShipped": "Order {order_id} is on its way",
        "OrderCancelled": "Order {order_id} was cancelled",
    }

    def apply(self, event: DomainEvent) -> None:
        customer = get_user_model().objects.get(pk=event.payload["customer_id"])
        if not customer.email:
            return
        subject = self.SUBJECTS[event.event_type].format(order_id=event.payload["order_id"])
        with transaction.atomic():
            _, created = NotificationSent.objects.get_or_create(
                event_id=event.event_id,
                defaults={"recipient": customer.email, "subject": subject},
            )
            if created:  # a failure to send rolls the row back, and the event is retried
                send_mail(subject, self.body(event), None, [customer.email])

    @staticmethod
    def body(event: DomainEvent) -> str:
        p = event.payload
        if event.event_type == "OrderPlaced":
            lines = "\n".join(
                f"  {line['quantity']} × {line['title']}  {line['unit_price']}"
                for line in p["lines"]
            )
            return f"Thank you for your order.\n\n{lines}\n\nTotal: {p['total']}\n"
        if event.event_type == "OrderShipped":
            return "Your books are on their way."
        return f"Your order was cancelled. {p['reason']}\nRefunded: {p['refunded']}\n"
