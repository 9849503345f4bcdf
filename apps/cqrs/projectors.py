"""Projectors turn events into read-model rows; the registry knows them all by name.

A projector declares the event types it handles and the tables it owns, and applies one event at
a time. It need not guard against seeing an event twice: the runtime (apps/cqrs/runtime.py) moves
its checkpoint in the same read-database transaction as its rows, so an event is applied at most
once in effect. Subscribers that cause side effects use the same base and runtime.
"""

import hashlib
from collections.abc import Hashable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, TypeVar

from django.db import connections, transaction
from django.db.models import Model, QuerySet
from django.db.models.expressions import RawSQL

from apps.cqrs.context import Scope, scope
from apps.cqrs.events import Event
from apps.cqrs.models import Checkpoint, DomainEvent, ProjectorCheckpoint, SubscriberCheckpoint

H = TypeVar("H", bound=Hashable)
READ_ALIAS = "read"
WRITE_ALIAS = "default"
_replaying: ContextVar[bool] = ContextVar("cqrs_replaying", default=False)
_building: ContextVar[bool] = ContextVar("cqrs_building", default=False)
# What a replay has inserted and committed so far, by kind (`not_written_yet`); None outside one.
_replay_written: ContextVar[dict[str, set[Hashable]] | None] = ContextVar(
    "cqrs_replay_written", default=None
)


def replaying() -> bool:
    """True while the log is replayed into a projector (a rebuild, in place or beside the live
    tables): it may skip work that only serves live readers (cache refreshes) and make up for it
    in `finish_replay`."""
    return _replaying.get()


def not_written_yet(kind: str, keys: Iterable[H]) -> list[H]:
    """Of `keys` (distinct), those this replay has not yet inserted as `kind`; all of them
    outside a replay. A projector that inserts rows many batches share (with ON CONFLICT DO
    NOTHING) may insert only these: a replay writes into empty tables, so what it committed
    is there. Keys are remembered once their batch commits, so a batch rolled back and tried
    again inserts its rows again."""
    keys = list(keys)
    written = _replay_written.get()
    if written is None:
        return keys
    seen = written.setdefault(kind, set())
    fresh = [key for key in keys if key not in seen]
    transaction.on_commit(partial(seen.update, fresh), using=READ_ALIAS)
    return fresh


_shard: ContextVar["Partition | None"] = ContextVar("cqrs_shard", default=None)


def replay_shard() -> "Partition | None":
    """The shard whose events are being applied, in a replay split by rows
    (`Projector.replays_by_rows`); None otherwise, when every row is the projector's to write."""
    return _shard.get()


@contextmanager
def applying(part: "Partition") -> Iterator[None]:
    """Apply events of `part`: `replay_shard()` says which rows are its own."""
    token = _shard.set(part if part.shard else None)
    try:
        yield
    finally:
        _shard.reset(token)


def building() -> bool:
    """True while this thread projects into a new version's tables (apps/cqrs/blue_green.py):
    its checkpoints are not the live ones, so they are announced to nobody."""
    return _building.get()


class Projector:
    name: ClassVar[str]
    # The event types it reads: declared as contract classes (a typo is then a NameError), kept
    # as their names. Strings are accepted, and checked at start-up (apps/cqrs/checks.py).
    handles: ClassVar[frozenset[str | type[Event]]]
    # The tables this projector fills; rebuilding empties them first.
    models: ClassVar[tuple[type[Model], ...]] = ()
    # The Celery queue its catch-up runs on: read models and side effects scale separately.
    queue: ClassVar[str] = "projections"
    # Read models are rebuilt by replaying the log; side effects must never be replayed.
    replayable: ClassVar[bool] = True
    # The version of its read model. Raise it when the rows change shape or meaning: a deploy
    # then builds the new version beside the live one and switches reads to it once it has
    # caught up (apps/cqrs/blue_green.py, docs/upgrades.md).
    version: ClassVar[int] = 1
    # Where its rows and its checkpoint live: they move together in one transaction there.
    database: ClassVar[str] = READ_ALIAS
    checkpoint_model: ClassVar[type[Checkpoint]] = ProjectorCheckpoint
    # Events per transaction; None for the runtime's default (CQRS_BATCH_SIZE).
    batch_size: ClassVar[int | None] = None
    # Partitions projected in parallel, each with its own checkpoint and runner. An event goes
    # to one partition by its key: the payload field `partition_by`, or the aggregate's id.
    # The events of one key stay in order; rows that two keys share must not exist. Changing
    # the count: docs/operations.md ("Changing a projector's partitions").
    partitions: ClassVar[int] = 1
    partition_by: ClassVar[str | None] = None
    # True where each aggregate's rows depend only on its own events (in version order): a
    # failing event then parks its aggregate alone, whose later events wait with it, while the
    # others go on. False: a failing event stops the partition until it applies or is skipped.
    parks_by_key: ClassVar[bool] = False
    # True where each row belongs to one key although an event may touch rows of several (an
    # order, several books' listings), so the events cannot be partitioned: a replay by N
    # replayers (`rebuild_read_models --jobs N`) is still split N ways, by rows. Each shard reads
    # `shard_events` and writes only its own rows (`replay_shard()`); before the switch their
    # checkpoints are merged into the projector's (`runtime.repartition`).
    replays_by_rows: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "handles" in cls.__dict__:
            cls.handles = frozenset(
                h if isinstance(h, str) else h.event_type for h in cls.__dict__["handles"]
            )

    @staticmethod
    def key_of(event: DomainEvent) -> str:
        """The key a failing event parks: its aggregate."""
        return f"{event.aggregate_type}:{event.aggregate_id}"

    @staticmethod
    def key_events(events: QuerySet[DomainEvent], key: str) -> QuerySet[DomainEvent]:
        aggregate_type, _, aggregate_id = key.partition(":")
        return events.filter(aggregate_type=aggregate_type, aggregate_id=aggregate_id)

    def partition_list(self) -> list["Partition"]:
        return [Partition(self, index) for index in range(self.partitions)]

    def replay_parts(self, replayers: int) -> list["Partition"]:
        """What a replay by `replayers` side by side is split into: the partitions, or as many
        shards for a projector that `replays_by_rows`."""
        if self.replays_by_rows and self.partitions == 1 and replayers > 1:
            return [Partition(self, index, replayers, shard=True) for index in range(replayers)]
        return self.partition_list()

    def shard_events(
        self, events: QuerySet[DomainEvent], shard: "Partition"
    ) -> QuerySet[DomainEvent]:
        """The events a shard of a replay by rows reads: all of them unless narrowed."""
        return events

    def partition_of(self, event: DomainEvent) -> "Partition":
        key = event.payload.get(self.partition_by) if self.partition_by else event.aggregate_id
        return Partition(self, key_partition("" if key is None else str(key), self.partitions))

    def apply(self, event: DomainEvent) -> bool | None:
        """Apply one event. Subscribers return whether it acted (see `Subscriber`)."""
        raise NotImplementedError

    def apply_batch(self, events: Sequence[DomainEvent]) -> int | None:
        """Apply events in position order. Override to batch writes (bulk upserts).

        May return how many of the events it applied, when it stops early; the checkpoint then
        moves past those only, and the rest come in the next batch. None means all of them."""
        for event in events:
            self.apply(event)
        return None

    def reset(self) -> None:
        """Empty this projector's tables before a replay from the start of the log."""
        for model in self.models:
            model._default_manager.using(READ_ALIAS).all().delete()

    def finish_replay(self) -> None:
        """Called once replayed rows serve reads: after a rebuild in place, or inside the
        switch to a new version's tables, where readers wait on those tables until it commits
        (so a cache retired here cannot be refilled from the old ones)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


SQL_PARTITION_FUNCTION = "cqrs_partition"


def key_partition(key: str, count: int) -> int:
    """The partition of `key` among `count`; `Partition.events` computes the same in SQL.
    md5, so that the answer never changes with a PostgreSQL or Python version."""
    return int(hashlib.md5(key.encode()).hexdigest()[:8], 16) % count


def key_partition_sql(key: str, vendor: str) -> str:
    """SQL for the partition of the text `key` among %s: `key_partition` in the database."""
    if vendor == "postgresql":
        return f"mod(('x' || substr(md5(COALESCE({key}, '')), 1, 8))::bit(32)::bigint, %s)"
    # SQLite, the embedded default: the function registered by apps.cqrs.apps
    return f"{SQL_PARTITION_FUNCTION}(COALESCE({key}, ''), %s)"


SHARD = "rows "  # in a shard's checkpoint name: catalog.book_listing[rows 0/2]


@dataclass(frozen=True)
class Partition:
    """One checkpoint and one runner of a projector; the only one unless it declares more. A
    shard is a piece of a replay split by rows (`Projector.replays_by_rows`)."""

    projector: Projector
    index: int
    count: int = 0  # the projector's partition count unless given (a layout to move from)
    shard: bool = False

    def __post_init__(self) -> None:
        if not self.count:
            object.__setattr__(self, "count", self.projector.partitions)

    @classmethod
    def named(cls, projector: Projector, name: str) -> "Partition":
        """The partition a checkpoint's name stands for, whatever count it was made for."""
        if name == projector.name:
            return cls(projector, 0, 1)
        inside = name.removeprefix(f"{projector.name}[").removesuffix("]")
        index, count = inside.removeprefix(SHARD).split("/")
        return cls(projector, int(index), int(count), shard=inside.startswith(SHARD))

    @property
    def name(self) -> str:
        """Its checkpoint's name. The count is part of it: checkpoints of another count are a
        layout to move from (`manage.py repartition_projector`), never to carry on with."""
        if self.count == 1:
            return self.projector.name
        return f"{self.projector.name}[{SHARD if self.shard else ''}{self.index}/{self.count}]"

    def events(self, events: QuerySet[DomainEvent]) -> QuerySet[DomainEvent]:
        """`events` narrowed to this partition's keys (a shard's: `Projector.shard_events`)."""
        if self.shard:
            return self.projector.shard_events(events, self)
        if self.count == 1:
            return events
        key = "aggregate_id" if not self.projector.partition_by else "payload->>%s"
        params = [self.projector.partition_by] if self.projector.partition_by else []
        sql = key_partition_sql(key, connections[events.db].vendor)
        return events.alias(partition=RawSQL(sql, [*params, self.count])).filter(
            partition=self.index
        )

    def __str__(self) -> str:
        return self.name


class Subscriber(Projector):
    """Reacts to events with side effects: commands (process managers), e-mails.

    It runs on the same checkpointed runtime, with its checkpoint in the write database: the
    commands it runs commit in the same transaction as its checkpoint, so each event's commands
    take effect exactly once. Effects outside the database (an e-mail) can still be repeated
    after a crash, so those must be idempotent per event id.

    `apply` returns whether it acted (ran a command, sent something). A batch ends after the
    first event that acted, so its effects commit with the checkpoint before the next event is
    looked at: a transaction that has appended to the log is never kept open for another event's
    work (readers wait for it at a gap). Events that need nothing are passed over many to a
    transaction. A subscriber that appends nothing to the log, and whose effects leave only
    after the commit, may take the batch whole (`OrderEmails`).
    """

    queue = "side-effects"
    replayable = False
    database = WRITE_ALIAS
    checkpoint_model = SubscriberCheckpoint

    def apply(self, event: DomainEvent) -> bool:
        raise NotImplementedError

    def apply_batch(self, events: Sequence[DomainEvent]) -> int | None:
        for applied, event in enumerate(events, 1):
            if self.apply(event):
                return applied
        return None

    @staticmethod
    def caused_by(event: DomainEvent) -> AbstractContextManager[Scope]:
        """A scope whose commands carry the event's correlation id and name it as their cause."""
        return scope(correlation_id=event.correlation_id, causation_id=event.event_id)


class Registry:
    def __init__(self) -> None:
        self._projectors: dict[str, Projector] = {}

    def register(self, cls: type[Projector]) -> type[Projector]:
        """Class decorator: make a projector known to the runtime, the sweep and rebuilds."""
        if cls.name in self._projectors and type(self._projectors[cls.name]) is not cls:
            raise ValueError(f"Two projectors are named {cls.name!r}.")
        self._projectors[cls.name] = cls()
        return cls

    def unregister(self, name: str) -> None:
        self._projectors.pop(name, None)

    def get(self, name: str) -> Projector:
        try:
            return self._projectors[name]
        except KeyError:
            raise LookupError(
                f"No projector named {name!r}; known: {', '.join(sorted(self._projectors))}"
            ) from None

    def all(self) -> list[Projector]:
        return [self._projectors[name] for name in sorted(self._projectors)]

    def replayable(self) -> list[Projector]:
        return [p for p in self.all() if p.replayable]

    def slots(self) -> list[tuple[str, int]]:
        """The (queue, partition index) pairs a wake-up task runs: see `slot`."""
        return sorted(
            {(p.queue, i) for p in self._projectors.values() for i in range(p.partitions)}
        )

    def slot(self, queue: str, index: int) -> list["Partition"]:
        """The partitions one wake-up task runs: partition `index` of every projector on
        `queue` (apps/cqrs/dispatch.py). A projector's partitions are in different slots, so
        they still run in parallel on different worker processes."""
        return [
            Partition(p, index) for p in self.all() if p.queue == queue and index < p.partitions
        ]

    def interested_in(self, event_types: Iterable[str]) -> list[Projector]:
        types = set(event_types)
        return [p for p in self.all() if p.handles & types]


registry = Registry()
register = registry.register
