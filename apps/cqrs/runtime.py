"""The projector runtime: catch a projector up from its checkpoint, rebuild it, report on it.

A projector runs as one or more partitions (apps/cqrs/projectors.py), each with a checkpoint of
its own, so that its partitions are projected in parallel. Each batch is one transaction on the
projector's database (the read database; the write database for subscribers) that (1) locks the
partition's checkpoint row, (2) reads the partition's next events after the checkpoint, up to
the log's horizon (apps/cqrs/horizon.py), (3) applies them in position order, which never
inverts an aggregate's versions, and (4) moves the checkpoint. The row lock makes runners of
the same partition take turns, whichever worker process they are in, and
each re-reads the checkpoint after taking the lock, so no event is applied twice. A runner
that finds the lock taken must not simply give up: a wake-up that arrives while another runner
finishes its last batch must still see the event that caused it. Replays and commands wait for
the lock. Worker tasks (`wait=False`) do not, since a long batch would then hold a second worker
process idle (under load, a subscriber's duplicate wake-ups starved every projector behind
it): they ask the holder for one more pass, which reads a newer head, and look once more in
case it finished before it could see the request.

A worker's wake-up runs a slot (partition i of every projector on a queue) with
`catch_up_together`: its read models share each batch's transaction, horizon and read of the
log, and fall back to the per-partition runner above whenever that is not the simple case
(docs/decisions/0009-slots-and-shared-batches.md).

A failing event stops only its projector's partition: the events before it are kept, the error
is stored on the checkpoint with a retry time that backs off exponentially, and the sweep tries
again then. It goes on once the cause is fixed, or once staff skip the event with a reason: the
skip is an event in the log (apps/cqrs/skips.py), which every batch, live or replayed, honours.
A projector whose aggregates are independent (`parks_by_key`) parks the failing event's
aggregate instead: the partition goes on with every other key, passes over the parked key's
later events, and staff retry the key (`retry_parked`) or skip its event, then retry.
"""

import logging
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import psycopg.errors
from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, OperationalError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.cqrs import locks, metrics
from apps.cqrs.consistency import head_position, note_checkpoint, note_checkpoints
from apps.cqrs.dispatch import wake_slots
from apps.cqrs.horizon import readable_position
from apps.cqrs.live import announce
from apps.cqrs.logs import log_events, projecting
from apps.cqrs.models import (
    PROJECTED_FIELDS,
    Checkpoint,
    DomainEvent,
    ReadModelVersion,
    load_events,
    load_range,
)
from apps.cqrs.projectors import (
    Partition,
    Projector,
    _replay_written,
    _replaying,
    applying,
    building,
    registry,
)
from apps.cqrs.rows import rows_by_pk
from apps.cqrs.skips import skipped_positions
from config.cache import add_with_members, take_members

logger = logging.getLogger(__name__)
WRITE_ALIAS = "default"
# Set by a runner that found the projector busy; the runner at work takes one more pass.
RERUN_KEY = "cqrs:another-pass:{name}"
RERUN_SECONDS = 60
# The partitions runners found their slot's backlog lock taken for (`_catch_up_slot_behind`).
SLOT_PASS_KEY = "cqrs:slot-pass:{queue}:{index}"
# How long a runner stuck at a gap polls for the transactions that may fill it to end. Worker
# tasks (`wait=False`) do not poll, so no worker process idles: a transaction that commits
# wakes the projector itself (or, for another partition's events, the slot held back wakes
# itself again: `catch_up_together`), and one that rolls back is passed by the next wake-up.
GAP_WAIT_SECONDS = 0.25


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
    more: bool = False  # stopped after `batches` batches with more to do (`catch_up_partition`)


class PartitionsChanged(Exception):
    """The projector's checkpoints were made for another partition count."""


def _checkpoints(projector: Projector) -> QuerySet[Checkpoint]:
    """Every checkpoint row of the projector, whatever partition count made it."""
    return projector.checkpoint_model._default_manager.using(projector.database).filter(
        Q(name=projector.name) | Q(name__startswith=f"{projector.name}[")
    )


def _ensure_checkpoints(projectors: list[Projector]) -> None:
    """Create the checkpoints of a projector's first run. A projector whose checkpoints were
    made for another partition count is refused: starting its new partitions from zero would
    apply every event a second time (docs/operations.md says how to move them)."""
    for projector in projectors:
        names = {part.name for part in projector.partition_list()}
        existing = set(_checkpoints(projector).values_list("name", flat=True))
        if existing - names:
            raise PartitionsChanged(
                f"{projector.name} has checkpoints {', '.join(sorted(existing - names))}, not "
                f"{projector.partitions} partition(s): run `manage.py repartition_projector "
                f"{projector.name}` (or rebuild it)."
            )
        projector.checkpoint_model._default_manager.using(projector.database).bulk_create(
            [projector.checkpoint_model(name=name) for name in sorted(names - existing)],
            ignore_conflicts=True,
        )
        if not existing and projector.replayable:
            # A first run fills the tables from the start of the log: they are what this code's
            # version makes.
            ReadModelVersion.objects.using(projector.database).bulk_create(
                [ReadModelVersion(name=projector.name, version=projector.version)],
                ignore_conflicts=True,
            )


def _ensure_replayable(projector: Projector) -> None:
    if not projector.replayable:
        raise ValueError(f"{projector.name} causes side effects: it is never replayed.")


class _Busy(Exception):
    """Another runner holds the projector's checkpoint, and this one does not wait."""


def _locked_checkpoint(part: Partition, *, wait: bool = True) -> Checkpoint:
    checkpoints = part.projector.checkpoint_model._default_manager.using(part.projector.database)
    try:
        return checkpoints.select_for_update(nowait=not wait).get(name=part.name)
    except OperationalError as exc:
        if isinstance(exc.__cause__, psycopg.errors.LockNotAvailable):  # NOWAIT, and taken
            raise _Busy from exc
        raise


def _ask_for_another_pass(part: Partition) -> bool:
    """Whether the request was stored (added now, or already there); None is an unreachable
    cache (config/cache.py)."""
    return cache.add(RERUN_KEY.format(name=part.name), 1, RERUN_SECONDS) is not None


def _another_pass_asked(part: Partition) -> bool:
    return bool(cache.delete(RERUN_KEY.format(name=part.name)))


def _run_batch(
    part: Partition, batch_size: int, force: bool, wait: bool
) -> tuple[list[DomainEvent], int, bool, bool]:
    """One transaction: returns (the events applied, checkpoint after, whether more may
    follow, whether the checkpoint moved)."""
    projector = part.projector
    with transaction.atomic(using=projector.database):
        checkpoint = _locked_checkpoint(part, wait=wait)
        if not force and checkpoint.retry_at and checkpoint.retry_at > timezone.now():
            return [], checkpoint.position, False, False
        # Everything up to the horizon is visible or never will be (apps/cqrs/horizon.py).
        horizon = readable_position(after=checkpoint.position, wait=GAP_WAIT_SECONDS if wait else 0)
        fetched = load_events(
            part.events(DomainEvent.objects.using(WRITE_ALIAS))
            .filter(
                position__gt=checkpoint.position,
                position__lte=horizon.position,
                event_type__in=projector.handles,
            )
            .order_by("position"),
            batch_size,
            fields=PROJECTED_FIELDS if _replaying.get() else None,  # it logs no event
        )
        # Staff skip only the event a projector is stopped at (apps/cqrs/skips.py), so a
        # healthy projector has nothing ahead of it to skip, except in a replay from the start.
        events = fetched
        if checkpoint.failed_position is not None or checkpoint.parked or _replaying.get():
            skipped, parked = skipped_positions(projector.name), checkpoint.parked
            if skipped or parked:  # a replay has seldom either: no key to make per event
                events = [
                    e
                    for e in fetched
                    if e.position not in skipped and projector.key_of(e) not in parked
                ]
        try:
            with applying(part):
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
            more = full or horizon.more
            new_position = fetched[-1].position if full else horizon.position
        moved = new_position != checkpoint.position
        if checkpoint.attempts:
            checkpoint.position = new_position
            checkpoint.clear_failure()
            checkpoint.save()
        elif moved:
            checkpoint.position = new_position
            checkpoint.save(update_fields=["position", "updated_at"])
        return events[:applied], new_position, more, moved


class _BatchFailed(Exception):
    """Some event of a batch failed; the runtime retries one event at a time to find which."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def _record_failure(
    part: Partition, cause: BaseException, event: DomainEvent | None
) -> CatchUpResult:
    metrics.projection_failures.labels(part.projector.name).inc()
    with transaction.atomic(using=part.projector.database):
        checkpoint = _locked_checkpoint(part)
        checkpoint.attempts += 1
        delay = min(2**checkpoint.attempts, settings.CQRS_RETRY_MAX_SECONDS)
        checkpoint.retry_at = timezone.now() + timedelta(seconds=delay)
        # Without an event, the batch failed as a whole (at commit): the next one is to blame.
        checkpoint.failed_position = event.position if event else checkpoint.position + 1
        checkpoint.last_error = _error_text(cause)
        checkpoint.save()
    logger.error(
        "Projector %s stopped at %s (attempt %s, retry in %ss): %r",
        part.name,
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


def _park(part: Partition, event: DomainEvent, cause: BaseException) -> None:
    """Park the failing event's key: the partition moves past it, and passes over the key's
    later events until staff retry or skip it (`retry_parked`)."""
    key = part.projector.key_of(event)
    metrics.projection_failures.labels(part.projector.name).inc()
    with transaction.atomic(using=part.projector.database):
        checkpoint = _locked_checkpoint(part)
        if checkpoint.position >= event.position:
            return  # another runner got past it meanwhile
        checkpoint.parked = {
            **checkpoint.parked,
            key: {
                "position": event.position,
                "event_type": event.event_type,
                "error": _error_text(cause),
                "attempts": 1,
                "parked_at": timezone.now().isoformat(),
            },
        }
        checkpoint.position = event.position
        checkpoint.clear_failure()
        checkpoint.save()
    if not building():
        note_checkpoint(part.name, event.position)
    logger.error("Projector %s parked %s at %s: %r", part.name, key, event, cause)


def _error_text(cause: BaseException) -> str:
    return "".join(traceback.format_exception(cause))[-4000:]


class NotParked(LookupError):
    pass


def retry_parked(projector: Projector, *, key: str) -> dict[str, Any] | None:
    """Apply a parked key's events again, from the one that failed up to its partition's
    checkpoint, one at a time and skipping those staff skipped. Unparks the key when all apply;
    otherwise keeps it parked at the event that failed this time and returns that entry.
    Raises NotParked when no partition has the key parked."""
    with transaction.atomic(using=projector.database):
        checkpoints = _lock_all(projector)
        checkpoint = next((cp for cp in checkpoints.values() if key in cp.parked), None)
        if checkpoint is None:
            raise NotParked(f"{projector.name} has no parked {key}.")
        entry = checkpoint.parked[key]
        skipped = skipped_positions(projector.name)
        events = projector.key_events(DomainEvent.objects.using(WRITE_ALIAS), key).filter(
            position__gte=entry["position"],
            position__lte=checkpoint.position,
            event_type__in=projector.handles,
        )
        parked = dict(checkpoint.parked)
        del parked[key]
        for event in events.order_by("position"):
            if event.position in skipped:
                continue
            try:
                with transaction.atomic(using=projector.database):
                    projector.apply_batch([event])
            except Exception as exc:
                parked[key] = {
                    **entry,
                    "position": event.position,
                    "event_type": event.event_type,
                    "error": _error_text(exc),
                    "attempts": entry["attempts"] + 1,
                }
                break
        checkpoint.parked = parked
        checkpoint.save(update_fields=["parked"])
    return parked.get(key)


def parked_key_at(projector: Projector, position: int) -> str | None:
    """The key a partition of the projector has parked at the event at `position`, if any."""
    for checkpoint in _checkpoints(projector):
        for key, entry in checkpoint.parked.items():
            if entry["position"] == position:
                return str(key)
    return None


def catch_up(
    projector: Projector,
    *,
    partition: int | Partition | None = None,
    batch_size: int | None = None,
    force: bool = False,
    wait: bool = True,
    on_batch: Callable[[int, int], None] | None = None,
) -> CatchUpResult:
    """Apply every event after the checkpoint, batch by batch, until none is left: of one
    partition, or of each in turn when `partition` is None (the result then says how far all
    of them have got: the lowest checkpoint).

    A projector that failed recently is left alone until its retry time unless `force` is set.
    With `wait=False`, a runner that finds another one at work hands its wake-up to it and
    returns (see the module docstring). `on_batch(applied, position)` is called after each
    committed batch (progress bars).
    """
    if partition is None:
        parts = projector.partition_list()
    else:
        parts = [partition if isinstance(partition, Partition) else Partition(projector, partition)]
    results = [
        catch_up_partition(part, batch_size=batch_size, force=force, wait=wait, on_batch=on_batch)
        for part in parts
    ]
    failed = [r for r in results if r.failed_position is not None]
    return CatchUpResult(
        applied=sum(r.applied for r in results),
        position=min(r.position for r in results),
        failed_position=failed[0].failed_position if failed else None,
        skipped_until=failed[0].skipped_until if failed else None,
    )


def catch_up_partition(
    part: Partition,
    *,
    batch_size: int | None = None,
    force: bool = False,
    wait: bool = True,
    on_batch: Callable[[int, int], None] | None = None,
    batches: int | None = None,
) -> CatchUpResult:
    """`catch_up` for one partition; with `batches`, it returns after that many committed
    batches (`more` says whether it stopped early), so that a caller can take turns between
    partitions."""
    projector = part.projector
    batch_size = batch_size or projector.batch_size or settings.CQRS_BATCH_SIZE
    applied = 0
    position = None
    asked = False  # whether this runner has asked the one at work for another pass
    one_by_one = 0  # events left to apply singly after a batch failed
    while True:
        try:
            size = 1 if one_by_one else batch_size
            started = time.perf_counter()
            with projecting(part.name):
                done, position, more, moved = _run_batch(part, size, force, wait)
            metrics.batch_duration.labels(projector.name).observe(time.perf_counter() - started)
        except projector.checkpoint_model.DoesNotExist:
            # A projector's first run. The rows are committed before the batch: inserted inside
            # it, they would make every other runner wait for the whole batch on their keys.
            if part.shard:  # a replay's shard: its own, beside the other shards'
                projector.checkpoint_model._default_manager.using(projector.database).get_or_create(
                    name=part.name
                )
            else:
                _ensure_checkpoints([projector])
            continue
        except _Busy:
            # After a batch of ours, the runner that took over reads a newer horizon than ours.
            if position is None and not asked:
                asked = True
                wait = not _ask_for_another_pass(part)  # without the cache, wait
                continue
            return CatchUpResult(applied=applied, position=position or _position(part))
        except _BatchFailed as failed:
            # Apply that batch one event at a time: the events before the failing one are kept,
            # and the failing one is named in the error.
            one_by_one = failed.size
            continue
        except ProjectionFailed as failure:
            if projector.parks_by_key:
                _park(part, failure.event, failure.cause)
                one_by_one = max(one_by_one - 1, 0)
                continue
            result = _record_failure(part, failure.cause, failure.event)
            return CatchUpResult(
                applied, result.position, result.failed_position, result.skipped_until
            )
        except DatabaseError as exc:
            # The batch's transaction failed to commit: record it like a failing event, so
            # that no projector stalls in silence.
            result = _record_failure(part, exc, None)
            return CatchUpResult(
                applied, result.position, result.failed_position, result.skipped_until
            )
        count = len(done)
        metrics.events_applied.labels(projector.name).inc(count)
        one_by_one = max(one_by_one - count, 0)
        applied += count
        if not building():  # a build's checkpoints are not the ones readers wait for
            note_checkpoint(part.name, position)
            # Reads wait for read models, which a move without events passes too; a
            # subscriber's batch is news only for the keys it touched.
            if moved and (count or projector.replayable):
                announce({part.name: position}, keys={part.name: map(projector.key_of, done)})
        if count and not _replaying.get():  # a replay logs its progress, not its events
            log_events(done, "event applied", projector=part.name)
        if on_batch and count:
            on_batch(count, position)
        # A build leaves the live runners' requests for another pass to them.
        if not more and (building() or not _another_pass_asked(part)):
            return CatchUpResult(applied=applied, position=position)
        if batches is not None and not one_by_one:
            batches -= 1
            if batches <= 0:
                return CatchUpResult(applied=applied, position=position, more=True)


def catch_up_together(parts: Sequence[Partition]) -> int:
    """`catch_up(wait=False)` for the partitions one worker task runs (a slot's wake-up,
    apps/cqrs/dispatch.py); returns the events applied.

    Read models on one database share their batches: one transaction locks all their
    checkpoints, one horizon and one read of the log serve them all, and one statement moves
    the checkpoints. That is the live case, where a wake-up brings an event or two and the
    batch's own round trips were most of a projector's work. Everything else goes partition by
    partition, through `catch_up_partition`:
    - subscribers, whose effects commit before their next event is looked at;
    - a partition another runner holds (locked rows are passed over, not waited for), or with
      no checkpoint yet, or stopped at a failure;
    - all of them when the read of the log comes back full: a partition far behind batches
      well on its own, and would hold the others to its pace here.
    A shared batch that fails rolls back as a whole; its partitions then go one by one, which
    finds the failing event and records it where it belongs.
    """
    applied = 0
    alone = [part for part in parts if not part.projector.replayable]
    groups: dict[tuple[str, type[Checkpoint]], list[Partition]] = {}
    for part in parts:
        if part.projector.replayable:
            key = (part.projector.database, part.projector.checkpoint_model)
            groups.setdefault(key, []).append(part)
    held_back: dict[tuple[str, int], list[str]] = {}
    for group in groups.values():
        while group:
            started = time.perf_counter()
            try:
                with projecting(",".join(part.name for part in group)):
                    batch = _run_shared_batch(group)
            except Exception:
                logger.info("A shared batch failed; its partitions go one by one", exc_info=True)
                alone += group
                # It may have held siblings' checkpoints until it rolled back, as one that
                # commits does (below): the passes asked of them meanwhile are this task's.
                alone += [part for part in _passes_asked(_siblings(group)) if part not in alone]
                break
            alone += batch.alone
            group = [part for part in group if part not in batch.alone]
            # Requests for another pass from runners that found these checkpoints held, in one
            # round trip. Another batch meets those for the group. Those for a sibling only this
            # task can see now, so it runs that partition itself: otherwise the sibling's events
            # waited for its next wake-up, or for the sweep after the last command (bench-cost's
            # lag run: the order history's last orders, 2.2 s).
            asked = _passes_asked([*group, *batch.siblings])
            alone += [part for part in batch.siblings if part in asked and part not in alone]
            for part, done in batch.done.items():
                metrics.batch_duration.labels(part.projector.name).observe(
                    time.perf_counter() - started
                )
                metrics.events_applied.labels(part.projector.name).inc(len(done))
                applied += len(done)
                if done:
                    log_events(done, "event applied", projector=part.name)
            # Siblings moved along too: a read waits for every partition of a read model.
            announce(
                {part.name: batch.positions[part] for part in batch.moved},
                keys={
                    part.name: map(part.projector.key_of, done) for part, done in batch.done.items()
                },
            )
            note_checkpoints({part.name: position for part, position in batch.positions.items()})
            if not batch.more and not any(part in asked for part in group):
                if batch.held_back:
                    for part in group:
                        held_back.setdefault((part.projector.queue, part.index), []).append(
                            part.projector.name
                        )
                break
    if held_back:
        # Either an append still open held the read short of the log's end: its commit wakes
        # the slots of its own events only (dispatch.wake), and a partition here may have
        # events after it that no other wake-up is coming for. Or a sibling's runner was asked
        # for another pass, and may have looked for the request just before it was made.
        # Without this, both waited for the sweep (bench-cost saw the order history wait
        # 3.2 s). Queued as a wake-up is, the task starts once the slot's wake-up interval has
        # passed: what stays held back is looked at again once an interval, not in a loop.
        wake_slots(held_back)
    turned, behind = _take_turns(alone)
    applied += turned
    slots: dict[tuple[str, int], list[Partition]] = {}
    for part in behind:
        slots.setdefault((part.projector.queue, part.index), []).append(part)
    for (queue, index), slot in slots.items():
        applied += _catch_up_slot_behind(queue, index, slot)
    return applied


def _take_turns(parts: list[Partition]) -> tuple[int, list[Partition]]:
    """One batch of each partition; returns the events applied and the partitions with more
    to go. In turns, so that one far behind does not keep the others of its slot waiting
    until it has caught up."""
    results = [catch_up_partition(part, wait=False, batches=1) for part in parts]
    behind = [part for part, result in zip(parts, results, strict=True) if result.more]
    return sum(result.applied for result in results), behind


def _catch_up_slot_behind(queue: str, index: int, parts: list[Partition]) -> int:
    """Partitions of one slot with more than a batch to go, taking turns until they have
    caught up, by one runner per slot at a time (a session advisory lock).

    Without it, the tasks that keep coming for a slot while it works through a backlog (the
    sweep's, the wake-ups') take every worker process to help with that slot, while another
    slot's task waits in the queue behind them: the partitions of one projector, meant to
    run in parallel, run one after the other. A runner that finds the slot taken leaves its
    partitions' names beside the lock and returns; the one at work takes them after letting
    go of the lock, so none is lost between the two."""
    key = SLOT_PASS_KEY.format(queue=queue, index=index)
    slot = registry.slot(queue, index)
    applied = 0
    while parts:
        # Left before trying the lock: either the lock is had, or its holder finds the names.
        left = add_with_members(cache, {key: [part.name for part in parts]}, RERUN_SECONDS)
        with locks.advisory_lock(
            using=WRITE_ALIAS, kind=locks.SLOT, name=f"{queue}:{index}", wait=left is None
        ) as held:
            if not held:
                return applied
            wanted = {part.name for part in parts} | (take_members(cache, key) or set())
            parts = [part for part in slot if part.name in wanted]
            while parts:
                done, parts = _take_turns(parts)
                applied += done
        wanted = take_members(cache, key) or set()  # left while this runner held the lock
        parts = [part for part in slot if part.name in wanted]
    return applied


@dataclass(frozen=True)
class _SharedBatch:
    done: dict[Partition, list[DomainEvent]]  # the events each partition applied
    positions: dict[Partition, int]  # where their checkpoints (and siblings moved) are now
    more: bool
    alone: list[Partition]  # to go partition by partition
    # Stopped at a position an open transaction may fill, or asked a sibling's runner for
    # another pass: the slot is to be woken again (`catch_up_together`).
    held_back: bool = False
    # Other partitions of its projectors whose checkpoints the batch held, if only for a while.
    siblings: list[Partition] = field(default_factory=list)
    # The partitions whose checkpoints it moved, siblings included.
    moved: list[Partition] = field(default_factory=list)


class _NotShared(Exception):
    """A projector applied only part of its events: its batch must be its own."""


def _run_shared_batch(parts: list[Partition]) -> _SharedBatch:
    """One transaction for partitions of read models with one database and checkpoint table.

    The other partitions of a partitioned projector among them (its siblings) move along when
    the log holds nothing of theirs up to the horizon: a command wakes only the slots its
    events go to (apps/cqrs/dispatch.py), and read-your-writes waits for every partition."""
    projector = parts[0].projector
    checkpoints = projector.checkpoint_model._default_manager.using(projector.database)
    batch_size = min(p.projector.batch_size or settings.CQRS_BATCH_SIZE for p in parts)
    own = {part.name for part in parts}
    siblings = _siblings(parts)
    with transaction.atomic(using=projector.database):
        names = [*own, *(sibling.name for sibling in siblings)]
        locked = rows_by_pk(
            projector.checkpoint_model, names, skip_locked=True, using=projector.database
        )
        held = [sibling for sibling in siblings if sibling.name in locked]

        def healthy(part: Partition) -> bool:
            cp = locked.get(part.name)
            return (
                cp is not None and cp.failed_position is None and not cp.parked and not cp.attempts
            )

        ready = [part for part in parts if healthy(part)]
        alone = [part for part in parts if part not in ready]
        # Only siblings of a projector that reads the log here: the others' event types are not
        # in this batch's read, so it cannot tell whether the log holds anything of theirs.
        reading = {id(part.projector) for part in ready}
        siblings = [sibling for sibling in siblings if id(sibling.projector) in reading]
        asked = False
        for sibling in siblings:
            if sibling.name not in locked:  # its runner is at work: it is to look again
                _ask_for_another_pass(sibling)
                asked = True
        siblings = [sibling for sibling in siblings if healthy(sibling)]
        if not ready:
            return _SharedBatch({}, {}, False, alone, held_back=asked, siblings=held)
        start = min(locked[part.name].position for part in [*ready, *siblings])
        horizon = readable_position(after=start)
        # Names by now: a projector's classes become names when it is declared.
        handles = cast(set[str], set().union(*(part.projector.handles for part in ready)))
        fetched = load_range(
            after=start,
            upto=horizon.position,
            event_types=handles,
            limit=batch_size,
            using=WRITE_ALIAS,
        )
        if len(fetched) == batch_size:
            return _SharedBatch({}, {}, False, parts, siblings=held)

        def events_of(part: Partition) -> list[DomainEvent]:
            after = locked[part.name].position
            return [
                e
                for e in fetched
                if e.position > after
                and e.event_type in part.projector.handles
                and (part.count == 1 or part.projector.partition_of(e).index == part.index)
            ]

        done = {}
        for part in ready:
            events = events_of(part)
            if events:
                applied = part.projector.apply_batch(events)
                if applied is not None and applied < len(events):
                    raise _NotShared(part.name)
            done[part] = events
        # A sibling with events of its own is left to the slot they woke.
        moving = [*ready, *(sibling for sibling in siblings if not events_of(sibling))]
        # A checkpoint ahead of this horizon (read from a lower start) stays where it is.
        moved = [p for p in moving if locked[p.name].position < horizon.position]
        for part in moved:
            locked[part.name].position = horizon.position
        if moved:
            checkpoints.filter(name__in=[part.name for part in moved]).update(
                position=horizon.position, updated_at=timezone.now()
            )
    positions = {part: locked[part.name].position for part in moving}
    held_back = asked or horizon.blocked_at is not None
    return _SharedBatch(done, positions, horizon.more, alone, held_back, held, moved)


def _siblings(parts: Sequence[Partition]) -> list[Partition]:
    """The other partitions of the partitioned projectors among `parts`."""
    own = {part.name for part in parts}
    return list(
        {
            sibling.name: sibling
            for part in parts
            for sibling in part.projector.partition_list()
            if sibling.name not in own
        }.values()
    )


def _passes_asked(parts: list[Partition]) -> list[Partition]:
    """The partitions another runner asked for another pass, taking the requests."""
    keys = {RERUN_KEY.format(name=part.name): part for part in parts}
    asked = list(cache.get_many(list(keys)))
    if asked:
        cache.delete_many(asked)
    return [keys[key] for key in asked]


def _position(part: Partition) -> int:
    checkpoints = part.projector.checkpoint_model._default_manager.using(part.projector.database)
    return checkpoints.filter(name=part.name).values_list("position", flat=True).first() or 0


def _lock_all(projector: Projector) -> dict[str, Checkpoint]:
    """Every partition's checkpoint, locked, in name order (so two callers cannot deadlock)."""
    return {
        cp.name: cp
        for cp in projector.checkpoint_model._default_manager.using(projector.database)
        .select_for_update()
        .filter(name__in=[part.name for part in projector.partition_list()])
        .order_by("name")
    }


def start_rebuild(projector: Projector) -> None:
    """Empty the projector's tables and move every partition's checkpoint back to zero: a
    rebuild in place, which readers see half done (SQLite, tests, repairs). Deploys and staff
    build beside the live tables instead (apps/cqrs/blue_green.py).

    The reset and the checkpoints' return commit together, so live runners that take turns with
    the replay continue from wherever it has got to."""
    _ensure_replayable(projector)
    _ensure_checkpoints([projector])
    with transaction.atomic(using=projector.database):
        checkpoints = _lock_all(projector)
        projector.reset()
        for checkpoint in checkpoints.values():
            checkpoint.position = 0
            checkpoint.clear_failure()
            checkpoint.parked = {}
            checkpoint.save()
        ReadModelVersion.objects.using(projector.database).update_or_create(
            name=projector.name, defaults={"version": projector.version}
        )
    for name in checkpoints:
        note_checkpoint(name, 0)


def replay(
    projector: Projector,
    *,
    partition: int | Partition | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> CatchUpResult:
    """Catch a projector (or one partition, or a shard) up as a replay after `start_rebuild`:
    skipped events are looked up before every batch, and cache refreshes wait for
    `finish_replay`."""
    token, written = _replaying.set(True), _replay_written.set({})
    try:
        return catch_up(
            projector,
            partition=partition,
            force=True,
            batch_size=max(settings.CQRS_BATCH_SIZE, 2000),
            on_batch=on_batch,
        )
    finally:
        _replay_written.reset(written)
        _replaying.reset(token)


def rebuild(
    projector: Projector, *, on_batch: Callable[[int, int], None] | None = None
) -> CatchUpResult:
    """Empty the projector's tables and replay the whole log into them, partition by partition
    (`rebuild_read_models --jobs` runs them in parallel processes)."""
    start_rebuild(projector)
    result = replay(projector, on_batch=on_batch)
    projector.finish_replay()
    return result


def replay_rows(
    projector: Projector, *, events: QuerySet[DomainEvent], delete: Callable[[], None]
) -> int:
    """Rebuild some rows of a replayable projector: `delete` removes them, then `events` (the
    ones those rows are made of) are applied again, each up to its partition's checkpoint,
    under the partitions' locks so that no live runner interleaves. Returns the number of
    events applied."""
    _ensure_replayable(projector)
    _ensure_checkpoints([projector])
    with transaction.atomic(using=projector.database):
        checkpoints = _lock_all(projector)
        delete()
        highest = max(cp.position for cp in checkpoints.values())
        skipped = skipped_positions(projector.name)
        chosen = [
            e
            for e in events.using(WRITE_ALIAS)
            .filter(position__lte=highest, event_type__in=projector.handles)
            .order_by("position")
            if e.position not in skipped
            and e.position <= checkpoints[projector.partition_of(e).name].position
        ]
        projector.apply_batch(chosen)
    return len(chosen)


def repartition(projector: Projector) -> tuple[list[str], int]:
    """Move a projector's checkpoints to the partition count it now declares, without a
    rebuild: under the locks of all its old checkpoints, each old partition is caught up to the
    furthest of them (positions below a checkpoint are settled, apps/cqrs/horizon.py), and the
    new partitions start there together. Returns the old checkpoints' names and that position.
    Refused while a partition is stopped at a failure or has parked keys. A build's shards (a
    replay split by rows) become its partitions the same way, before its switch."""
    with transaction.atomic(using=projector.database):
        old = list(_checkpoints(projector).select_for_update().order_by("name"))
        names = [part.name for part in projector.partition_list()]
        if not old or [cp.name for cp in old] == names:
            return [cp.name for cp in old], max((cp.position for cp in old), default=0)
        troubled = [cp.name for cp in old if cp.failed_position is not None or cp.parked]
        if troubled:
            raise ValueError(f"Retry or skip the failures of {', '.join(troubled)} first.")
        target = max(cp.position for cp in old)
        skipped = skipped_positions(projector.name)
        for cp in old:
            part = Partition.named(projector, cp.name)
            events = (
                part.events(DomainEvent.objects.using(WRITE_ALIAS))
                .filter(
                    position__gt=cp.position, position__lte=target, event_type__in=projector.handles
                )
                .order_by("position")
            )
            batch: list[DomainEvent] = []
            with applying(part):
                for event in events.iterator(chunk_size=2000):
                    if event.position not in skipped:
                        batch.append(event)
                    if len(batch) == 2000:
                        projector.apply_batch(batch)
                        batch = []
                projector.apply_batch(batch)
        _checkpoints(projector).delete()
        projector.checkpoint_model._default_manager.using(projector.database).bulk_create(
            [projector.checkpoint_model(name=name, position=target) for name in names]
        )
    if not building():  # a build's checkpoints are not the ones readers wait for
        for name in names:
            note_checkpoint(name, target)
    return [cp.name for cp in old], target


@dataclass(frozen=True)
class ProjectorStatus:
    name: str  # the partition's checkpoint: the projector's name, or name[index/count]
    projector: str
    position: int
    head: int
    lag_events: int
    lag_seconds: float
    last_error: str
    failed_position: int | None
    attempts: int
    retry_at: datetime | None
    updated_at: datetime | None
    parked: dict[str, Any]  # key -> where and why it is parked (see `_park`)


def status(projectors: list[Projector] | None = None) -> list[ProjectorStatus]:
    """Per partition of each projector: checkpoint, head of the log, lag in events and
    seconds, last error."""
    projectors = registry.all() if projectors is None else projectors
    head = head_position()
    now = timezone.now()
    rows = []
    for projector in projectors:
        try:
            _ensure_checkpoints([projector])
            changed = ""
        except PartitionsChanged as exc:
            changed = str(exc)  # shown as its error, on the checkpoints it has
        checkpoints = _checkpoints(projector).in_bulk(field_name="name")
        for name, cp in sorted(checkpoints.items()):
            part = Partition.named(projector, name)
            pending = part.events(DomainEvent.objects.using(WRITE_ALIAS)).filter(
                position__gt=cp.position, event_type__in=projector.handles
            )
            oldest = pending.order_by("position").values_list("recorded_at", flat=True).first()
            rows.append(
                ProjectorStatus(
                    name=part.name,
                    projector=projector.name,
                    position=cp.position,
                    head=head,
                    lag_events=pending.count(),
                    lag_seconds=(now - oldest).total_seconds() if oldest else 0.0,
                    last_error=changed or cp.last_error,
                    failed_position=cp.failed_position,
                    attempts=cp.attempts,
                    retry_at=cp.retry_at,
                    updated_at=cp.updated_at,
                    parked=cp.parked,
                )
            )
    return rows
