"""Customer e-mails, sent outside any transaction.

`OrderEmails` (subscribers.py) records a batch's `Notification`s in the transaction that
moves its checkpoint and hands them here once that commits (`send_after_commit`): a
rolled-back batch sends nothing. A send that fails, or a worker that dies before marking the
rows sent, leaves them unsent; `emails_recover` (beat, every 30 s) sends those again once no one
has tried for `EMAIL_RETRY_AFTER_SECONDS`. Delivery is therefore at least once: a worker killed
between the sends and the mark repeats its batch's mails. Each mail carries a Message-ID made
from its event id, the same on every attempt, so a mail system that keeps them can recognise the
repeat.
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


def send_after_commit(*, notifications: list[Notification]) -> None:
    """Send `notifications` once the running transaction has committed. The rows were created
    by this transaction, with `attempted_at` now, so recovery leaves them alone meanwhile."""
    if notifications:
        after_commit(partial(_send, notifications))


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
        if claimed:
            sent += _send([notification])
    return sent


def _send(notifications: list[Notification]) -> int:
    """Send each, then mark those that went as sent, in one statement; how many went."""
    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2].strip("> ") or "localhost"
    sent = []
    for notification in notifications:
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
            continue
        sent.append(notification.pk)
    if sent:
        Notification.objects.filter(pk__in=sent).update(sent_at=timezone.now())
    return len(sent)
