from contextlib import suppress
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from apps.cqrs.context import scope
from apps.cqrs.exceptions import Conflict
from apps.write.orders import emails, services


@shared_task(name="orders.cancel_unpaid", ignore_result=True)
def cancel_unpaid() -> int:
    """Cancel orders whose payment did not come in time, putting their stock back.
    Each order is its own command; one paid meanwhile is refused and left alone."""
    cutoff = timezone.now() - timedelta(minutes=settings.ORDER_PAYMENT_TIMEOUT_MINUTES)
    cancelled = 0
    with scope():
        for order_id in services.orders_unpaid_since(cutoff):
            with suppress(Conflict):
                services.order_cancel(
                    actor=services.UNPAID_ORDER_TIMER, order_id=order_id, reason="Payment timed out"
                )
                cancelled += 1
    return cancelled


@shared_task(name="orders.recover_payments", ignore_result=True)
def recover_payments() -> dict[str, int]:
    """Settle the payments, captures and refunds a crash left between a gateway call and its
    record (services.payments_recover). Safe to run any number of times."""
    with scope():
        return services.payments_recover()


@shared_task(name="orders.recover_emails", ignore_result=True)
def recover_emails() -> int:
    """Send the customer e-mails a failed send or a dead worker left unsent (emails.py)."""
    return emails.emails_recover()
