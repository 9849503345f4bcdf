"""Read-your-writes: let a query wait, within a bound, for the projectors behind it to pass the
position a client's command returned."""

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db.models import Max
from django.http import HttpRequest

from apps.cqrs import metrics, replicas
from apps.cqrs.models import DomainEvent
from apps.cqrs.projectors import WRITE_ALIAS, Projector, registry

POLL_SECONDS = 0.02
MIN_POSITION_HEADER = "X-Min-Position"
# The newest committed position, raised (never lowered) by every commit's wake-up
# (apps/cqrs/dispatch.py), so that queries report their lag without asking the write database.
# Approximate under concurrent commits, which is all a lag needs.
HEAD_CACHE_KEY = "cqrs:head-position"
CHECKPOINT_CACHE_KEY = "cqrs:checkpoint:{name}"
# Long enough to spare the database on every read, short enough that a value written out of
# order (always a lower one, so never a false claim of freshness) does not linger.
CHECKPOINT_CACHE_SECONDS = 60

ViewT = TypeVar("ViewT", bound=Callable[..., Any])


def note_checkpoint(name: str, position: int) -> None:
    """Remember a projector's checkpoint after its batch committed, so that queries can say how
    fresh they are without asking the read database. Written after the commit, the cached
    value is never ahead of the table."""
    note_checkpoints({name: position})


def note_checkpoints(positions: dict[str, int]) -> None:
    """`note_checkpoint` for several partitions, in one round trip."""
    if positions:
        keys = {CHECKPOINT_CACHE_KEY.format(name=name): p for name, p in positions.items()}
        cache.set_many(keys, CHECKPOINT_CACHE_SECONDS)


@dataclass(frozen=True)
class ReadConsistency:
    position: int  # every event up to here is in the read model
    head: int  # the newest event in the log
    waited: float  # seconds spent waiting
    satisfied: bool  # False when the bound ran out before `min_position` was reached

    @property
    def lag(self) -> int:
        return max(self.head - self.position, 0)


def partition_names(projector_names: Iterable[str]) -> list[str]:
    return [p.name for name in projector_names for p in registry.get(name).partition_list()]


def position_keys(projector_names: list[str]) -> list[str]:
    """The cache keys that say how fresh a read of these projectors' tables is (one per
    partition); a caller may fetch them in the same round trip as its own entries and pass the
    values to `cached_positions`."""
    names = partition_names(projector_names)
    return [*(CHECKPOINT_CACHE_KEY.format(name=name) for name in names), HEAD_CACHE_KEY]


def cached_positions(projector_names: list[str], values: dict[str, Any]) -> tuple[int | None, int]:
    """From values fetched for `position_keys`: the position every partition of every projector
    has passed (None unless all are cached) and the head of the log (0 when unknown). A
    position counts as passed only when every partition has passed it: any of them could hold
    an event at or below it."""
    keys = position_keys(projector_names)[:-1]
    head = values.get(HEAD_CACHE_KEY) or 0
    if not keys or not all(key in values for key in keys):
        return None, head
    return min(values[key] for key in keys), head


def _cached_positions(projectors: list[Projector]) -> tuple[int | None, int]:
    names = [p.name for p in projectors]
    return cached_positions(names, cache.get_many(position_keys(names)))


def read_position(
    projectors: list[Projector], *, primary: bool = False, remember: bool = False
) -> int:
    """The position every partition of these projectors has passed, from their checkpoints: in
    the database this request reads (a replica's copy says what its rows include), or in the
    primary. With `remember`, what the read database says goes to the cache for the next
    reads (a wait's first read; not its polls)."""
    positions = []
    for p in projectors:
        names = [part.name for part in p.partition_list()]
        on_replica = p.database == replicas.READ_ALIAS and not primary
        alias = replicas.read_alias() if on_replica else p.database
        found = dict(
            p.checkpoint_model._default_manager.using(alias)
            .filter(name__in=names)
            .values_list("name", "position")
        )
        if remember and alias == p.database:
            # Read from the table, so never ahead of it: the next reads need not ask again
            # while the projector has nothing to write (note_checkpoint).
            note_checkpoints(found)
        positions.append(min(found.values()) if len(found) == len(names) else 0)
    return min(positions, default=0)


def head_position() -> int:
    """The highest position in the log that is visible now (0 for an empty log)."""
    return DomainEvent.objects.using(WRITE_ALIAS).aggregate(p=Max("position"))["p"] or 0


@dataclass(frozen=True)
class ReadWait:
    """What a view waits for when a client sends a position: the projectors behind it, the query
    parameter that carries the position (the X-Min-Position header does too), and for how long
    at most (CQRS_READ_WAIT_SECONDS unless given). Under ASGI the wait happens before the view
    runs, where it holds no worker (apps/cqrs/asgi.py); the view then only reads."""

    projector_names: tuple[str, ...]
    parameter: str = "min_position"
    timeout: float | None = None


def waits(spec: ReadWait) -> Callable[[ViewT], ViewT]:
    """Declare a function view's `ReadWait` (class-based query views declare `projector_names`).
    Put it under decorators that wrap the view with `functools.wraps`, which carry it outwards."""

    def declare(view: ViewT) -> ViewT:
        view.read_wait = spec  # type: ignore[attr-defined]
        return view

    return declare


# The ASGI scope key under which apps/cqrs/asgi.py leaves the seconds it waited for a request.
WAITED_SCOPE_KEY = "cqrs.waited"
# The gateway sends the live pool the prefix of its location that hands a waited read on to the
# query pool (X-Accel-Redirect), and the query pool, through that location only, that the read
# was waited for; it clears both as clients send them (deploy/gateway.conf.template).
HANDOFF_HEADER = "X-Read-Handoff"
WAITED_HEADER = "X-Read-Waited"


def waited_upstream(request: HttpRequest) -> bool:
    """Whether this request's wait already happened before the view: in the event loop of this
    ASGI process, or in the live pool's, which handed the read on to this sync worker. Sent to a
    sync worker directly, the header only spares a client its own wait: the answer still says
    whether it reached the position."""
    return (
        WAITED_SCOPE_KEY in (getattr(request, "scope", None) or {})
        or request.headers.get(WAITED_HEADER) == "1"
    )


class PositionBeyondHead(ValueError):
    """No event has this position yet: no command returned it, so waiting could not end well."""

    def __init__(self, position: int, head: int) -> None:
        super().__init__(f"No event has position {position} yet; the log ends at {head}.")
        self.position, self.head = position, head


def wait_for_position(
    *, projector_names: list[str], min_position: int | None, timeout: float | None = None
) -> ReadConsistency:
    """Wait until the named projectors have passed `min_position`, or `timeout` runs out
    (CQRS_READ_WAIT_SECONDS by default). Never raises for a slow projector: the caller answers
    with what the read model has and says so. A position no event has yet raises
    PositionBeyondHead at once."""
    projectors = [registry.get(name) for name in projector_names]
    timeout = settings.CQRS_READ_WAIT_SECONDS if timeout is None else timeout
    started = time.monotonic()
    # The cached checkpoints are the primary's: a replica's own say what it holds.
    position, head = (None, 0) if replicas.on_replica() else _cached_positions(projectors)
    if position is None or (min_position is not None and position < min_position):
        position = read_position(projectors, remember=True)
    if min_position is not None and position < min_position:
        # A position a command returned is committed, so visible: one beyond the visible head
        # was never returned, and is answered at once rather than waited for.
        visible = head_position()
        if min_position > visible:
            raise PositionBeyondHead(min_position, visible)
    while min_position is not None and position < min_position:
        if time.monotonic() - started >= timeout:
            break
        time.sleep(POLL_SECONDS)
        position = read_position(projectors)
    satisfied = min_position is None or position >= min_position
    if not satisfied and replicas.on_replica():
        # The replica is behind: the primary answers if it has the position (exact, at the
        # cost of one primary read), else the replica's answer goes out marked stale.
        primary = read_position(projectors, primary=True)
        if min_position is not None and primary >= min_position:
            replicas.use_primary()
            metrics.replica_fallbacks.inc()
            position, satisfied = primary, True
    if min_position is not None and timeout > 0:  # with 0, the live pool waited and counted
        metrics.observe_read_wait(reached=satisfied, seconds=time.monotonic() - started)
    return ReadConsistency(
        position=position,
        head=max(head, position),
        waited=time.monotonic() - started,
        satisfied=satisfied,
    )
