"""Customer e-mails, sent outside any transaction.

`OrderEmails` (subscribers.py) records a `Notification` in the transaction that moves its
checkpoint and hands it here once that commits (`send_after_commit`): a rolled-back batch sends
nothing. A send that fails, or a worker that dies before marking the row sent, leaves it unsent;
`emails_recover` (beat, every 30 s) sends those again once no one has tried for
`EMAIL_RETRY_AFTER_SECONDS`. Delivery is therefore at least once: a worker killed between the
send and the mark repeats the mail. Each mail carries a Message-ID made from its event id, the
same on every attempt, so a mail system that keeps them can recognise the repeat.
"""

import logging
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.core.mail import EmailMessage
from django.db.models import F
from django.utils import timezone

from apps.cqrs.commands import after_commit
from apps.write.orders.models import Notification

logger = logging.getLogger(__name__)
GIVE_UP_AFTER_ATTEMPTS = 10


def send_after_commit(*, notification: Notification) -> None:
    """Send `notification` once the running transaction has committed. The row was created by
    this transaction, with `attempted_at` now, so recovery leaves it alone meanwhile."""
    after_commit(partial(_send, notification))


def emails_recover() -> int:
    """Send the notifications whose send failed or was cut short; returns how many were sent.
    Each is claimed first (a conditional update), so two recoveries never send the same one."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.EMAIL_RETRY_AFTER_SECONDS)
    unsent = Notification.objects.filter(
        sent_at=None, attempted_at__lt=stale, attempts__lt=GIVE_UP_AFTER_ATTEMPTS
    )
    sent = 0
    for notification in unsent.order_by("attempted_at")[:500]:
        claimed = unsent.filter(pk=notification.pk).update(
            attempted_at=now, attempts=F("attempts") + 1
        )
        if claimed and _send(notification):
            sent += 1
    return sent


def _send(notification: Notification) -> bool:
    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2].strip("> ") or "localhost"
    message = EmailMessage(
        notification.subject,
        notification.body,
        to=[notification.recipient],
        headers={"Message-ID": f"<{notification.event_id}@{domain}>"},
    )
    try:
        message.send()
    except Exception:
        logger.warning(
            "E-mail %s to %s not sent; recovery tries again",
            notification.event_id,
            notification.recipient,
            exc_info=True,
        )
        return False
    Notification.objects.filter(pk=notification.pk).update(sent_at=timezone.now())
    return True
