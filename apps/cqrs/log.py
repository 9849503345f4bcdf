"""Appending to the event log.

Appends run concurrently: `record()` only collects events, and the outermost command inserts
them at its end, in its own transaction, with no lock of the kernel's around the insert or the
commit (apps/cqrs/commands.py). What PostgreSQL still serialises is the sequence's `nextval`
and, per aggregate, the unique (type, id, version) index: microseconds, never across a commit.

Aggregate versions stay gap-free and ordered because the services lock the aggregate's row
before they change it, so two commands on one aggregate run one after the other and the second
reads the first one's version. Where a command records for an aggregate it did not lock and
another command got there first, the unique constraint refuses the second insert: the command
fails with a Conflict (409) and changes nothing. The same order makes positions follow versions:
the later command takes its position after the earlier one committed.

Positions therefore commit out of order; readers never step over one that may still commit:
see apps/cqrs/horizon.py, and docs/decisions/0001-concurrent-appends-and-the-log-horizon.md.
"""

import json
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from django.db import IntegrityError, connections
from django.db.models import Max, Q
from django.utils import timezone

from apps.cqrs.bulk import copy_rows
from apps.cqrs.context import Scope, current_scope
from apps.cqrs.events import Event, PayloadEncoder
from apps.cqrs.exceptions import Conflict
from apps.cqrs.models import DomainEvent
from apps.cqrs.signals import event_recorded

WRITE_ALIAS = "default"
VERSION_CONSTRAINT = "event_aggregate_version_unique"


class RecordError(RuntimeError):
    """record() was called outside a command service or outside a transaction."""


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

    Numbers aggregate versions from the log (the services hold the aggregates' row locks),
    stores the rows, and sends `event_recorded`.
    """
    if not outer.pending:
        return []
    if not connections[WRITE_ALIAS].in_atomic_block:
        raise RecordError("Events must be appended inside the command's transaction.")
    pending, outer.pending[:] = list(outer.pending), []
    now = timezone.now()
    rows: list[DomainEvent] = []
    nth: dict[tuple[str, str], int] = {}
    for event, meta in pending:
        key = (event.aggregate_type, event.aggregate_id)
        nth[key] = nth.get(key, 0) + 1
        rows.append(
            DomainEvent(
                event_id=uuid.uuid4(),
                aggregate_type=event.aggregate_type,
                aggregate_id=event.aggregate_id,
                aggregate_version=nth[key],  # this command's n-th; the log's latest is added
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
    try:
        if connections[WRITE_ALIAS].vendor == "postgresql":
            _insert_numbered(rows)
        else:
            versions = _current_versions(set(nth))
            for row in rows:
                row.aggregate_version += versions[row.aggregate_type, row.aggregate_id]
            DomainEvent.objects.bulk_create(rows)
    except IntegrityError as exc:
        if VERSION_CONSTRAINT not in str(exc):
            raise
        raise Conflict(
            "Another command changed the same thing at the same moment; try again."
        ) from exc
    outer.positions.extend(row.position for row in rows)
    event_recorded.send(sender=DomainEvent, events=rows, using=WRITE_ALIAS)
    return rows


_INSERT_COLUMNS = (
    "event_id, aggregate_type, aggregate_id, aggregate_version, event_type, schema_version, "
    "payload, command, actor_id, actor, correlation_id, causation_id, recorded_at"
)
_INSERT_ROW = (
    "(%s::uuid, %s, %s, %s::int, %s, %s::smallint, %s::jsonb, %s, %s::bigint, %s, %s::uuid, "
    "%s::uuid, %s::timestamptz)"
)
# One statement, one round trip: each row's version is the aggregate's latest in the log (read
# through the unique index) plus its rank in this command; the rows of one statement do not see
# each other, so the ranks are what keeps them apart.
_INSERT = f"""
INSERT INTO {DomainEvent._meta.db_table} ({_INSERT_COLUMNS})
SELECT v.event_id, v.aggregate_type, v.aggregate_id,
       v.aggregate_version + COALESCE((
           SELECT max(e.aggregate_version) FROM {DomainEvent._meta.db_table} e
           WHERE e.aggregate_type = v.aggregate_type AND e.aggregate_id = v.aggregate_id
       ), 0),
       v.event_type, v.schema_version, v.payload, v.command, v.actor_id, v.actor,
       v.correlation_id, v.causation_id, v.recorded_at
FROM (VALUES {{rows}}) AS v({_INSERT_COLUMNS})
RETURNING event_id, position, aggregate_version
"""


def _insert_numbered(rows: list[DomainEvent]) -> None:
    """Insert `rows` with their versions numbered by the database, and set each row's
    position and version from what it returns."""
    params: list[Any] = []
    for row in rows:
        params += [
            row.event_id, row.aggregate_type, row.aggregate_id, row.aggregate_version,
            row.event_type, row.schema_version, json.dumps(row.payload, cls=PayloadEncoder),
            row.command, row.actor_id, row.actor, row.correlation_id, row.causation_id,
            row.recorded_at,
        ]  # fmt: skip
    with connections[WRITE_ALIAS].cursor() as cursor:
        cursor.execute(_INSERT.format(rows=", ".join([_INSERT_ROW] * len(rows))), params)
        stored = {event_id: (position, version) for event_id, position, version in cursor}
    for row in rows:
        row.position, row.aggregate_version = stored[row.event_id]
        row._state.adding = False
        row._state.db = WRITE_ALIAS


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
    at a hundredth of the cost. It sends no signal, so projectors pick the events up on their
    next sweep. Returns the number of rows written.
    """
    connection = connections[WRITE_ALIAS]
    if connection.vendor != "postgresql" or not connection.in_atomic_block:
        raise RecordError("copy_new_aggregates() needs a PostgreSQL transaction.")
    now = timezone.now()
    versions: dict[tuple[str, str], int] = {}
    written = 0

    def rows() -> Iterator[tuple[object, ...]]:
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
                json.dumps(event.payload(), cls=PayloadEncoder),
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
