"""Appending to the event log.

Ordering without gaps on PostgreSQL
-----------------------------------
A reader follows the log by position and remembers the last position it applied. A plain
sequence is not enough for that: positions are taken at insert and become visible at commit, so
transaction A can take position 10, transaction B position 11, B commits first, and a reader that
sees 11 moves past 10 before A commits, never to see it.

We serialise appends instead: `record()` takes a transaction-scoped advisory lock
(`pg_advisory_xact_lock`) before it takes positions, and PostgreSQL releases that lock only after
the transaction's commit is visible to new snapshots. A second writer therefore takes its
positions after the first writer's events are visible, so whenever a reader sees position N,
every position below N is either visible too or belongs to a transaction that rolled back and
will never appear. Readers need no horizon, no gap tracking and no time-out; every projector reads
plain `position > checkpoint ORDER BY position`, and events are applied in exactly the order of
their positions, which is also the order of the aggregates' versions.

The price is that the part of a command transaction from the append to its commit runs one at a
time. `record()` only collects events; the outermost command appends them all at its very end,
after its reads, row locks and row changes (apps/cqrs/commands.py), so the serialised part is the
event insert and the commit itself. The alternatives were
a transaction-id horizon (`pg_snapshot_xmin`: no writer waits, but one long transaction stalls
every reader, and events are then ordered by transaction id rather than by position) and gap
tracking with a timeout (a timeout skips real events under load). SQLite, the embedded default,
allows one writer at a time anyway.
"""

import json
import uuid
from collections.abc import Iterable

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections
from django.db.models import Max, Q
from django.utils import timezone

from apps.cqrs.bulk import copy_rows
from apps.cqrs.context import Scope, current_scope
from apps.cqrs.events import Event
from apps.cqrs.models import DomainEvent
from apps.cqrs.signals import event_recorded

WRITE_ALIAS = "default"
# Any fixed 64-bit number; it names "the event log's append lock" among advisory locks.
APPEND_LOCK_KEY = 0x0C0F_FEE5_B00C


class RecordError(RuntimeError):
    """record() was called outside a command service or outside a transaction."""


def take_append_lock(using: str = WRITE_ALIAS) -> None:
    """Serialise event appends until the current transaction ends (see the module docstring).

    Django creates foreign keys DEFERRABLE INITIALLY DEFERRED, so PostgreSQL would check them,
    and take their KEY SHARE row locks, at commit: after this lock, while a writer holding
    such a row may be waiting for this lock. Deadlock. The checks are run now instead, so every
    row lock of the command is taken before the append lock (seen under the mixed-load test).
    """
    connection = connections[using]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # One round trip: without parameters, both statements go in one simple query.
            cursor.execute(
                f"SET CONSTRAINTS ALL IMMEDIATE; SELECT pg_advisory_xact_lock({APPEND_LOCK_KEY})"
            )


def record(*events: Event) -> None:
    """Record `events` as part of the running command service.

    They are stamped with the command, actor, correlation and causation ids of the current
    scope, and appended to the log when the outermost command finishes, inside its transaction
    (apps/cqrs/commands.py): a command that rolls back leaves no event.
    """
    meta = current_scope()
    if meta is None or not meta.command:
        raise RecordError("record() must be called from a command service (@command).")
    meta.pending.extend((event, meta) for event in events)


def append_pending(outer: Scope) -> list[DomainEvent]:
    """Append the events recorded under the outermost command `outer` and announce them.

    Takes the append lock, numbers aggregate versions under it (so services need no
    read-modify-write for them), stores the rows, and sends `event_recorded`.
    """
    if not outer.pending:
        return []
    if not connections[WRITE_ALIAS].in_atomic_block:
        raise RecordError("Events must be appended inside the command's transaction.")
    pending, outer.pending[:] = list(outer.pending), []
    take_append_lock()
    now = timezone.now()
    next_version = _current_versions({(e.aggregate_type, e.aggregate_id) for e, _ in pending})
    rows = []
    for event, meta in pending:
        key = (event.aggregate_type, event.aggregate_id)
        next_version[key] += 1
        rows.append(
            DomainEvent(
                aggregate_type=event.aggregate_type,
                aggregate_id=event.aggregate_id,
                aggregate_version=next_version[key],
                event_type=event.event_type,
                schema_version=event.schema_version,
                payload=event.payload(),
                command=meta.command,
                actor_id=meta.actor_id,
                actor=meta.actor,
                correlation_id=meta.correlation_id,
                causation_id=meta.causation_id,
                recorded_at=now,
            )
        )
    DomainEvent.objects.bulk_create(rows)
    outer.positions.extend(row.position for row in rows)
    event_recorded.send(sender=DomainEvent, events=rows, using=WRITE_ALIAS)
    return rows


def _current_versions(keys: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """The latest version of each (aggregate type, id), 0 for a new one, in one query."""
    matches = Q()
    for aggregate_type, aggregate_id in keys:
        matches |= Q(aggregate_type=aggregate_type, aggregate_id=aggregate_id)
    versions = dict.fromkeys(keys, 0)
    found = (
        DomainEvent.objects.filter(matches)
        .values_list("aggregate_type", "aggregate_id")
        .annotate(v=Max("aggregate_version"))
        .order_by()
    )
    for aggregate_type, aggregate_id, version in found:
        versions[aggregate_type, aggregate_id] = version
    return versions


COPY_COLUMNS = (
    "event_id",
    "aggregate_type",
    "aggregate_id",
    "aggregate_version",
    "event_type",
    "schema_version",
    "payload",
    "command",
    "actor_id",
    "actor",
    "correlation_id",
    "causation_id",
    "recorded_at",
)


def copy_new_aggregates(items: Iterable[tuple[Event, str]]) -> int:
    """Append, with PostgreSQL's COPY, the first events of aggregates that the caller has just
    created in the same transaction: each `(event, command name)` becomes the row the command
    would have recorded as the system, with its own correlation id, numbering versions from 1.

    This is the bulk path for seeding benchmark catalogs: the rows equal what the services write,
    at a hundredth of the cost. It takes the append lock like any command and sends no signal, so
    projectors pick the events up on their next sweep. Returns the number of rows written.
    """
    connection = connections[WRITE_ALIAS]
    if connection.vendor != "postgresql" or not connection.in_atomic_block:
        raise RecordError("copy_new_aggregates() needs a PostgreSQL transaction.")
    take_append_lock()
    now = timezone.now()
    versions: dict[tuple[str, str], int] = {}
    written = 0

    def rows():
        nonlocal written
        for event, command_name in items:
            key = (event.aggregate_type, event.aggregate_id)
            versions[key] = versions.get(key, 0) + 1
            written += 1
            yield (
                uuid.uuid4(),
                event.aggregate_type,
                event.aggregate_id,
                versions[key],
                event.event_type,
                event.schema_version,
                json.dumps(event.payload(), cls=DjangoJSONEncoder),
                command_name,
                None,
                "system",
                uuid.uuid4(),
                None,
                now,
            )

    copy_rows(
        using=WRITE_ALIAS, table=DomainEvent._meta.db_table, columns=COPY_COLUMNS, rows=rows()
    )
    return written
