"""Wakes the projectors after a command commits.

The wake-up is only a nudge: projectors read the log from their checkpoints, so a wake-up lost
with the broker or a killed process costs latency, never data; the beat sweep (`cqrs.sweep`)
catches every projector up every few seconds whatever happens here.
"""

import logging
from functools import partial
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.dispatch import receiver

from apps.cqrs.consistency import note_head
from apps.cqrs.models import DomainEvent
from apps.cqrs.projectors import registry
from apps.cqrs.signals import event_recorded
from config.cache import add_many

logger = logging.getLogger(__name__)
# Set while a catch-up is queued and not yet started; see `wake`.
WAKE_PENDING_KEY = "cqrs:wake-pending:{name}"
WAKE_PENDING_SECONDS = 10


def wake_pending_key(name: str) -> str:
    return WAKE_PENDING_KEY.format(name=name)


def wake(names: list[str], head: int) -> None:
    """Queue a catch-up for each partition of each named projector on its queue, unless one is
    queued and has not started yet: that one reads the log when it starts, after this commit,
    so it covers these events too. Under load this keeps one task per partition in the queue
    instead of one per command. Every partition is woken, not only those the events went to:
    read-your-writes waits for all of them to pass a position (apps/cqrs/consistency.py), and
    one with nothing to do moves its checkpoint in one short batch. Never raises."""
    from apps.cqrs.tasks import project

    note_head(head)
    parts = [part for name in names for part in registry.get(name).partition_list()]
    # Without the cache every key counts as added (config/cache.py): every partition is woken.
    added = add_many(cache, [wake_pending_key(p.name) for p in parts], WAKE_PENDING_SECONDS)
    parts = [part for part, new in zip(parts, added, strict=True) if new]
    for part in parts:
        try:
            # No publish retries: a request must not hang on a dead broker for a nudge.
            project.apply_async(
                (part.projector.name,),
                {"partition": part.index},
                queue=part.projector.queue,
                retry=False,
            )
        except Exception:
            logger.warning(
                "Could not wake projector %s; the sweep will catch it up.", part, exc_info=True
            )


@receiver(event_recorded, dispatch_uid="cqrs.wake_projectors_after_commit")
def wake_projectors_after_commit(
    sender: object, events: list[DomainEvent], using: str, **kwargs: Any
) -> None:
    names = [p.name for p in registry.interested_in(e.event_type for e in events)]
    head = max(e.position for e in events)
    transaction.on_commit(partial(wake, names, head), using=using, robust=True)
