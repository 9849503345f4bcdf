"""The projector runtime: catch a projector up from its checkpoint, rebuild it, report on it.

Each batch is one transaction on the projector's database (the read database; the write
database for subscribers) that (1) locks the projector's checkpoint row, (2) reads the next
events after the checkpoint from the log, (3) applies them and (4) moves the checkpoint. The row
lock makes runners of the same projector take turns, whichever worker process they are in, and
each re-reads the checkpoint after taking the lock, so no event is applied twice. A runner
that finds the lock taken must not simply give up: a wake-up that arrives while another runner
finishes its last batch must still see the event that caused it. Replays and commands wait for
the lock. Worker tasks (`wait=False`) do not, since a long batch would then hold a second worker
process idle (under load, a subscriber's duplicate wake-ups starved every projector behind
it): they ask the holder for one more pass, which reads a newer head, and look once more in
case it finished before it could see the request.

A failing event stops only its projector: the events before it are kept, the error is stored on
the checkpoint with a retry time that backs off exponentially, and the sweep tries again then.
It goes on once the cause is fixed, or once staff skip the event with a reason: the skip is an
event in the log (apps/cqrs/skips.py), which every batch, live or replayed, honours.
"""

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, OperationalError, transaction
from django.db.models import Max, QuerySet
from django.utils import timezone

from apps.cqrs.consistency import note_checkpoint
from apps.cqrs.models import Checkpoint, DomainEvent
from apps.cqrs.projectors import Projector, _replaying, registry
from apps.cqrs.skips import skipped_positions

logger = logging.getLogger(__name__)
WRITE_ALIAS = "default"
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE for a NOWAIT lock that is taken
# Set by a runner that found the projector busy; the runner at work takes one more pass.
RERUN_KEY = "cqrs:another-pass:{name}"
RERUN_SECONDS = 60


class ProjectionFailed(Exception):
    def __init__(self, event: DomainEvent, cause: BaseException) -> None:
        super().__init__(f"{event} failed: {cause!r}")
        self.event = event
        self.cause = cause


@dataclass(frozen=True)
class CatchUpResult:
    applied: int
    position: int
    failed_position: int | None = None
    skipped_until: datetime | None = None


def head_position() -> int:
    """The highest position in the log that is visible now (0 for an empty log)."""
    return DomainEvent.objects.using(WRITE_ALIAS).aggregate(p=Max("position"))["p"] or 0


def _ensure_checkpoints(projectors: list[Projector]) -> None:
    for projector in projectors:
        projector.checkpoint_model.objects.using(projector.database).bulk_create(
            [projector.checkpoint_model(name=projector.name)], ignore_conflicts=True
        )


def _ensure_replayable(projector: Projector) -> None:
    if not projector.replayable:
        raise ValueError(f"{projector.name} causes side effects: it is never replayed.")


class _Busy(Exception):
    """Another runner holds the projector's checkpoint, and this one does not wait."""


def _locked_checkpoint(projector: Projector, *, wait: bool = True) -> Checkpoint:
    checkpoints = projector.checkpoint_model.objects.using(projector.database)
    try:
        return checkpoints.select_for_update(nowait=not wait).get(name=projector.name)
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) == LOCK_NOT_AVAILABLE:
            raise _Busy from exc
        raise


def _ask_for_another_pass(projector: Projector) -> bool:
    try:
        cache.add(RERUN_KEY.format(name=projector.name), 1, RERUN_SECONDS)
    except Exception:
        return False
    return True


def _another_pass_asked(projector: Projector) -> bool:
    return bool(cache.delete(RERUN_KEY.format(name=projector.name)))


def _run_batch(
    projector: Projector, batch_size: int, force: bool, wait: bool
) -> tuple[int, int, bool]:
    """One transaction: returns (events applied, checkpoint after, whether more may follow)."""
    with transaction.atomic(using=projector.database):
        checkpoint = _locked_checkpoint(projector, wait=wait)
        if not force and checkpoint.retry_at and checkpoint.retry_at > timezone.now():
            return 0, checkpoint.position, False
        # Everything at or below `head` is visible or never will be (apps/cqrs/log.py), so the
        # checkpoint may move to `head` once no handled event is left below it.
        head = head_position()
        fetched = list(
            DomainEvent.objects.using(WRITE_ALIAS)
            .filter(
                position__gt=checkpoint.position,
                position__lte=head,
                event_type__in=projector.handles,
            )
            .order_by("position")[:batch_size]
        )
        # Staff skip only the event a projector is stopped at (apps/cqrs/skips.py), so a
        # healthy projector has nothing ahead of it to skip, except in a replay from the start.
        events = fetched
        if checkpoint.failed_position is not None or _replaying.get():
            skipped = skipped_positions(projector.name)
            events = [e for e in fetched if e.position not in skipped]
        try:
            applied = projector.apply_batch(events)
        except Exception as exc:
            if len(events) == 1:
                raise ProjectionFailed(events[0], exc) from exc
            raise _BatchFailed(len(fetched)) from exc
        applied = len(events) if applied is None else applied
        full = len(fetched) == batch_size
        if applied < len(events):  # a subscriber stopped after an event that acted
            more, new_position = True, events[applied - 1].position
        else:
            more, new_position = full, fetched[-1].position if full else head
        if new_position != checkpoint.position or checkpoint.attempts:
            checkpoint.position = new_position
            checkpoint.clear_failure()
            checkpoint.save()
        return applied, new_position, more


class _BatchFailed(Exception):
    """Some event of a batch failed; the runtime retries one event at a time to find which."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def _record_failure(
    projector: Projector, cause: BaseException, event: DomainEvent | None
) -> CatchUpResult:
    with transaction.atomic(using=projector.database):
        checkpoint = _locked_checkpoint(projector)
        checkpoint.attempts += 1
        delay = min(2**checkpoint.attempts, settings.CQRS_RETRY_MAX_SECONDS)
        checkpoint.retry_at = timezone.now() + timedelta(seconds=delay)
        # Without an event, the batch failed as a whole (at commit): the next one is to blame.
        checkpoint.failed_position = event.position if event else checkpoint.position + 1
        checkpoint.last_error = "".join(traceback.format_exception(cause))[-4000:]
        checkpoint.save()
    logger.error(
        "Projector %s stopped at %s (attempt %s, retry in %ss): %r",
        projector.name,
        event or f"the batch after #{checkpoint.position}",
        checkpoint.attempts,
        delay,
        cause,
    )
    return CatchUpResult(
        applied=0,
        position=checkpoint.position,
        failed_position=checkpoint.failed_position,
        skipped_until=checkpoint.retry_at,
    )


def catch_up(
    projector: Projector,
    *,
    batch_size: int | None = None,
    force: bool = False,
    wait: bool = True,
    on_batch: Callable[[int, int], None] | None = None,
) -> CatchUpResult:
    """Apply every event after the projector's checkpoint, batch by batch, until none is left.

    A projector that failed recently is left alone until its retry time unless `force` is set.
    With `wait=False`, a runner that finds another one at work hands its wake-up to it and
    returns (see the module docstring). `on_batch(applied, position)` is called after each
    committed batch (progress bars).
    """
    batch_size = batch_size or projector.batch_size or settings.CQRS_BATCH_SIZE
    applied = 0
    position = None
    asked = False  # whether this runner has asked the one at work for another pass
    one_by_one = 0  # events left to apply singly after a batch failed
    while True:
        try:
            size = 1 if one_by_one else batch_size
            count, position, more = _run_batch(projector, size, force, wait)
        except projector.checkpoint_model.DoesNotExist:
            # A projector's first run. The row is committed before the batch: inserted inside
            # it, it would make every other runner wait for the whole batch on its key.
            _ensure_checkpoints([projector])
            continue
        except _Busy:
            # After a batch of ours, the runner that took over reads a newer head than ours.
            if position is None and not asked:
                asked = True
                wait = not _ask_for_another_pass(projector)  # without the cache, wait
                continue
            return CatchUpResult(applied=applied, position=position or _position(projector))
        except _BatchFailed as failed:
            # Apply that batch one event at a time: the events before the failing one are kept,
            # and the failing one is named in the error.
            one_by_one = failed.size
            continue
        except ProjectionFailed as failure:
            result = _record_failure(projector, failure.cause, failure.event)
            return CatchUpResult(
                applied, result.position, result.failed_position, result.skipped_until
            )
        except DatabaseError as exc:
            # The batch's transaction failed to commit: record it like a failing event, so
            # that no projector stalls in silence.
            result = _record_failure(projector, exc, None)
            return CatchUpResult(
                applied, result.position, result.failed_position, result.skipped_until
            )
        one_by_one = max(one_by_one - count, 0)
        applied += count
        note_checkpoint(projector.name, position)
        if on_batch and count:
            on_batch(count, position)
        if not more and not _another_pass_asked(projector):
            return CatchUpResult(applied=applied, position=position)


def _position(projector: Projector) -> int:
    checkpoints = projector.checkpoint_model.objects.using(projector.database)
    return checkpoints.filter(name=projector.name).values_list("position", flat=True).first() or 0


def rebuild(
    projector: Projector, *, on_batch: Callable[[int, int], None] | None = None
) -> CatchUpResult:
    """Empty the projector's tables and replay the whole log into them.

    The reset and the checkpoint's return to zero commit together, so live runners that take
    turns with the replay continue from wherever it has got to.
    """
    _ensure_replayable(projector)
    _ensure_checkpoints([projector])
    with transaction.atomic(using=projector.database):
        checkpoint = _locked_checkpoint(projector)
        projector.reset()
        checkpoint.position = 0
        checkpoint.clear_failure()
        checkpoint.save()
    note_checkpoint(projector.name, 0)
    token = _replaying.set(True)
    try:
        result = catch_up(
            projector,
            force=True,
            batch_size=max(settings.CQRS_BATCH_SIZE, 2000),
            on_batch=on_batch,
        )
    finally:
        _replaying.reset(token)
    projector.finish_replay()
    return result


def replay_rows(
    projector: Projector, *, events: QuerySet[DomainEvent], delete: Callable[[], None]
) -> int:
    """Rebuild some rows of a replayable projector: `delete` removes them, then `events` (the
    ones those rows are made of) are applied again, up to the checkpoint, under the projector's
    lock so that no live runner interleaves. Returns the number of events applied."""
    _ensure_replayable(projector)
    _ensure_checkpoints([projector])
    with transaction.atomic(using=projector.database):
        checkpoint = _locked_checkpoint(projector)
        delete()
        chosen = list(
            events.using(WRITE_ALIAS)
            .filter(position__lte=checkpoint.position, event_type__in=projector.handles)
            .order_by("position")
        )
        skipped = skipped_positions(projector.name)
        chosen = [e for e in chosen if e.position not in skipped]
        projector.apply_batch(chosen)
    return len(chosen)


@dataclass(frozen=True)
class ProjectorStatus:
    name: str
    position: int
    head: int
    lag_events: int
    lag_seconds: float
    last_error: str
    failed_position: int | None
    attempts: int
    retry_at: datetime | None
    updated_at: datetime | None


def status(projectors: list[Projector] | None = None) -> list[ProjectorStatus]:
    """Per projector: checkpoint, head of the log, lag in events and seconds, last error."""
    projectors = registry.all() if projectors is None else projectors
    _ensure_checkpoints(projectors)
    head = head_position()
    now = timezone.now()
    rows = []
    for projector in projectors:
        cp = projector.checkpoint_model.objects.using(projector.database).get(name=projector.name)
        pending = DomainEvent.objects.using(WRITE_ALIAS).filter(
            position__gt=cp.position, event_type__in=projector.handles
        )
        oldest = pending.order_by("position").values_list("recorded_at", flat=True).first()
        rows.append(
            ProjectorStatus(
                name=projector.name,
                position=cp.position,
                head=head,
                lag_events=pending.count(),
                lag_seconds=(now - oldest).total_seconds() if oldest else 0.0,
                last_error=cp.last_error,
                failed_position=cp.failed_position,
                attempts=cp.attempts,
                retry_at=cp.retry_at,
                updated_at=cp.updated_at,
            )
        )
    return rows
