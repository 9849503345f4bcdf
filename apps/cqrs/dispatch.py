"""Wakes the projectors after a command commits.

The wake-up is only a nudge: projectors read the log from their checkpoints, so a wake-up lost
with the broker or a killed process costs latency, never data; the beat sweep (`cqrs.sweep`)
catches every projector up every few seconds whatever happens here.

One task wakes a slot: partition i of every projector on one queue (`Registry.slot`), which
runs them together (`runtime.catch_up_together`), so an order costs one task per slot its
events go to rather than one per projector partition
(docs/decisions/0009-slots-and-shared-batches.md).
"""

import logging
from collections.abc import Iterable
from functools import partial
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.dispatch import receiver

from apps.cqrs.consistency import HEAD_CACHE_KEY
from apps.cqrs.models import DomainEvent
from apps.cqrs.projectors import registry
from apps.cqrs.signals import event_recorded
from config.cache import Added, add_with_members

logger = logging.getLogger(__name__)
# Set while a slot's catch-up is queued and not yet started, with the projectors it is to run
# gathered beside it; see `wake`.
WAKE_PENDING_KEY = "cqrs:wake-pending:{queue}:{index}"
WAKE_PENDING_SECONDS = 10


def wake_pending_key(queue: str, index: int) -> str:
    return WAKE_PENDING_KEY.format(queue=queue, index=index)


def wake(names: list[str], head: int, events: list[DomainEvent] | None = None) -> None:
    """Queue a catch-up of each slot that holds a partition of a named projector, unless one is
    queued and has not started yet: the names join that one, which reads the log when it
    starts, after this commit, so it covers these events too. Under load this keeps one task
    per slot in the queue instead of one per command.

    Read-your-writes waits for every partition of a projector to pass a position
    (apps/cqrs/consistency.py). Given the `events`, a partitioned read model's slots are woken
    only where its events go (its first slot when none does): the slot that runs moves its
    other partitions along when nothing of theirs is in the log (`runtime.catch_up_together`).
    Otherwise, and for subscribers, every partition is woken.

    A slot whose last woken task started less than its queue's `CQRS_WAKE_INTERVALS` ago
    gets its task for when that interval ends, and every command until then joins it: under a
    stream of commands, a slot starts one task per interval however many commit, and an idle
    slot starts at once. The `head` is noted for queries' lag (`consistency.HEAD_CACHE_KEY`) in
    the same round trip to Redis. Never raises."""
    slots: dict[tuple[str, int], list[str]] = {}
    for name in names:
        projector = registry.get(name)
        indexes: Iterable[int] = range(projector.partitions)
        if events is not None and projector.replayable and projector.partitions > 1:
            mine = (e for e in events if e.event_type in projector.handles)
            # None of its events: the first slot moves every partition past these.
            indexes = sorted({projector.partition_of(e).index for e in mine}) or [0]
        for index in indexes:
            slots.setdefault((projector.queue, index), []).append(name)
    wake_slots(slots, head=head)


def wake_slots(slots: dict[tuple[str, int], list[str]], *, head: int | None = None) -> None:
    """Queue a catch-up of each slot (queue, index) for the named projectors, unless one is
    queued and has not started yet (see `wake`), and note the `head` if given. Never raises."""
    from apps.cqrs.tasks import project_slot

    pending = {wake_pending_key(*slot): wanted for slot, wanted in slots.items()}
    raise_to = (HEAD_CACHE_KEY, head) if head is not None else None
    added = add_with_members(cache, pending, WAKE_PENDING_SECONDS, raise_to=raise_to)
    # Without Redis nothing can be gathered: every slot gets a task of its own, at once.
    for ((queue, index), wanted), (new, pause) in zip(
        slots.items(), added or [Added(True, 0)] * len(slots), strict=True
    ):
        if not new:
            continue
        try:
            # No publish retries: a request must not hang on a dead broker for a nudge.
            project_slot.apply_async(
                (queue, index, wanted), queue=queue, retry=False, countdown=pause
            )
        except Exception:
            logger.warning(
                "Could not wake %s slot %s; the sweep will catch it up.",
                queue,
                index,
                exc_info=True,
            )


@receiver(event_recorded, dispatch_uid="cqrs.wake_projectors_after_commit")
def wake_projectors_after_commit(
    sender: object, events: list[DomainEvent], using: str, **kwargs: Any
) -> None:
    # Every read model, not only those the events concern: a client may send the command's
    # position to any read, which waits until that read model has passed it. One with nothing
    # to apply moves its checkpoint past it in the woken slot's batch, not at the sweep.
    interested = registry.interested_in(e.event_type for e in events)
    names = list(dict.fromkeys(p.name for p in [*interested, *registry.replayable()]))
    head = max(e.position for e in events)
    transaction.on_commit(partial(wake, names, head, events), using=using, robust=True)
