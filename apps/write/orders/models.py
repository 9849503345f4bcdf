import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Order(models.Model):
    class Status(models.TextChoices):
        PLACED = "placed", "Placed"
        PAID = "paid", "Paid"
        SHIPPED = "shipped", "Shipped"
        DELIVERED = "delivered", "Delivered"
        CANCELLED = "cancelled", "Cancelled"

    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PLACED)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    shipping_address = models.TextField()
    cancel_reason = models.CharField(max_length=200, blank=True)
    placed_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-placed_at"]
        indexes = [models.Index(fields=["customer", "-placed_at"], name="order_customer_placed")]
        constraints = [
            models.CheckConstraint(
                condition=Q(total__gte=Decimal("0")),
                name="order_total_ok",
                violation_error_message="An order's total cannot be negative.",
            )
        ]

    def __str__(self) -> str:
        return f"Order {self.pk}"


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    book = models.ForeignKey("catalog.Book", on_delete=models.PROTECT, related_name="+")
    title = models.CharField(max_length=300)
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)
    quantity = models.PositiveIntegerField()
    # Units still waiting for stock; filled first come, first served when stock arrives.
    backordered = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__gt=0),
                name="line_quantity_positive",
                violation_error_message="Order at least one of each book.",
            ),
            models.CheckConstraint(
                condition=Q(backordered__lte=models.F("quantity")),
                name="line_backorder_le_qty",
                violation_error_message="A line cannot wait for more books than it orders.",
            ),
        ]
        indexes = [
            models.Index(
                fields=["book", "id"], condition=Q(backordered__gt=0), name="line_open_backorders"
            )
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.title}"

    @property
    def reserved(self) -> int:
        return self.quantity - self.backordered


class Payment(models.Model):
    """One attempt to take money for an order, recorded before the gateway is called: its `key`
    is the idempotency key the gateway knows the call by (derived keys for the capture, void and
    refund that follow), so whatever crashes, recovery can ask the gateway what became of it.

    pending -> approved | declined | failed (never reached the gateway)
    pending -> authorized (checkout's hold, its order placed) -> approved | voided
    approved -> refund_pending (the order was cancelled) -> refunded
    A payment approved after its order stopped wanting it (cancelled, or paid by another) goes
    to refund_pending too, with `paid_order` false: it never paid the order."""

    class Status(models.TextChoices):
        PENDING = "pending", "Sent to the gateway"
        AUTHORIZED = "authorized", "Held on the card"
        APPROVED = "approved", "Approved"
        DECLINED = "declined", "Declined"
        FAILED = "failed", "Not charged"
        VOIDED = "voided", "Hold released"
        REFUND_PENDING = "refund_pending", "Refund sent"
        REFUNDED = "refunded", "Refunded"

    # Checkout records its payment before the order exists; the order is set once placed.
    order = models.ForeignKey(
        Order, on_delete=models.PROTECT, related_name="payments", null=True, blank=True
    )
    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    status = models.CharField(max_length=20, choices=Status.choices)
    reference = models.CharField(max_length=100, blank=True)
    authorization = models.CharField(max_length=100, blank=True)
    refund_reference = models.CharField(max_length=100, blank=True)
    paid_order = models.BooleanField(default=False, help_text="OrderPaid was recorded for it.")
    card_last4 = models.CharField(max_length=4)
    decline_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["pk"]
        indexes = [models.Index(fields=["status", "updated_at"], name="payment_status_updated")]

    def __str__(self) -> str:
        return f"{self.get_status_display()} {self.amount} for order {self.order_id}"

    def key_for(self, step: str) -> str:
        """The idempotency key of one gateway call of this payment: the payment's own for the
        charge or authorization, derived ones for what follows it."""
        return str(self.key) if step in ("charge", "authorize") else f"{self.key}:{step}"


class Notification(models.Model):
    """An e-mail to a customer, one per event, recorded with the subscriber's checkpoint and
    sent after that transaction commits (apps/write/orders/emails.py): a repeated event records
    nothing, and a send that failed or was cut short is sent again by `emails_recover`."""

    event_id = models.UUIDField(unique=True)
    recipient = models.EmailField()
    subject = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Moved by every attempt: recovery takes only rows no one has tried for a while.
    attempted_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["attempted_at"],
                condition=models.Q(sent_at__isnull=True),
                name="notification_unsent",
            )
        ]

    def __str__(self) -> str:
        return self.subject
