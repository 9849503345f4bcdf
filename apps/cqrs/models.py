import functools
import uuid
from collections.abc import Collection, Sequence
from typing import Any

import psycopg
import psycopg.adapt
import pydantic_core
from django.core.exceptions import EmptyResultSet
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, models
from django.db.models.base import ModelState
from django.db.models.query_utils import DeferredAttribute
from django.utils.functional import cached_property

from apps.cqrs.events import PayloadEncoder, decode, decode_json, upcast

# Where `load_events` leaves a payload's JSON text, for `data` to validate as it parses.
PAYLOAD_TEXT = "_payload_text"


class AppendOnlyError(Exception):
    """Raised on any attempt to change or remove a recorded event."""


class _PayloadAttribute(DeferredAttribute):
    """`DomainEvent.payload` of an event loaded by `load_events`: parsed from the JSON text
    the database sent when first read. Projectors read `data` instead, made from the text."""

    def __get__(self, instance: Any, cls: Any = None) -> Any:
        if instance is not None and "payload" not in instance.__dict__:
            text = instance.__dict__.get(PAYLOAD_TEXT)
            if text is not None:
                instance.__dict__["payload"] = pydantic_core.from_json(text)
        return super().__get__(instance, cls)


class PayloadField(models.JSONField):
    descriptor_class = _PayloadAttribute

    def deconstruct(self) -> Any:
        name, _, args, kwargs = super().deconstruct()
        return name, "django.db.models.JSONField", args, kwargs  # for migrations, the same


class DomainEventQuerySet(models.QuerySet["DomainEvent"]):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError("The event log is append-only: events are never updated.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("The event log is append-only: events are never deleted.")


class DomainEvent(models.Model):
    """One business fact in the append-only event log, the audit trail and the outbox.

    `position` is global and taken at insert. Transactions commit in another order than they take
    positions: readers follow the log up to its horizon (apps/cqrs/horizon.py), never past a
    position that may still commit.
    """

    position = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    aggregate_type = models.CharField(max_length=50)
    aggregate_id = models.CharField(max_length=64)
    aggregate_version = models.PositiveIntegerField()
    event_type = models.CharField(max_length=100)
    schema_version = models.PositiveSmallIntegerField(default=1)
    payload = PayloadField(encoder=PayloadEncoder)
    command = models.CharField(max_length=100, help_text="The command service that recorded it.")
    actor_id = models.BigIntegerField(null=True, blank=True, help_text="User id; empty for system.")
    actor = models.CharField(max_length=150, help_text="Who, as they were named at the time.")
    correlation_id = models.UUIDField(db_index=True)
    causation_id = models.UUIDField(null=True, blank=True, db_index=True)
    recorded_at = models.DateTimeField(db_index=True)

    objects = DomainEventQuerySet.as_manager()

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(
                fields=["aggregate_type", "aggregate_id", "aggregate_version"],
                name="event_aggregate_version_unique",
            ),
        ]
        indexes = [models.Index(fields=["event_type", "position"], name="event_type_position")]

    def __str__(self) -> str:
        return f"#{self.position} {self.event_type} {self.aggregate_type}:{self.aggregate_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("The event log is append-only: events are never updated.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("The event log is append-only: events are never deleted.")

    def get_deferred_fields(self) -> set[str]:
        deferred = super().get_deferred_fields()
        if PAYLOAD_TEXT in self.__dict__:
            deferred.discard("payload")  # held as text, not to be read again
        return deferred

    @cached_property
    def data(self) -> Any:
        """The event this row holds, typed and in its current shape (apps/cqrs/events.py): an
        instance of the contract `event_type` names. Which one is known only at run time, so
        this is `Any` to the type checker; handlers narrow it with `match` or their `handles`."""
        text = self.__dict__.get(PAYLOAD_TEXT)
        if text is not None and "payload" not in self.__dict__:
            return decode_json(self.event_type, self.schema_version, text)
        return decode(self.event_type, self.schema_version, self.payload)

    @property
    def current_payload(self) -> dict[str, Any]:
        """The payload as JSON values in its current shape: old versions upcast, as stored
        otherwise. The log keeps `payload` as it was written."""
        return upcast(self.event_type, self.schema_version, self.payload)


class LogHorizon(models.Model):
    """One row: a position up to which every event of the log is visible or will never be.

    Readers move it forward now and then (apps/cqrs/horizon.py), so that a reader far behind
    (a replay) reads the settled part of the log without looking for gaps in it again."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    position = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"log settled up to {self.position}"


class Checkpoint(models.Model):
    name = models.CharField(max_length=100, primary_key=True)
    position = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)
    last_error = models.TextField(blank=True)
    failed_position = models.BigIntegerField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Failures in a row.")
    retry_at = models.DateTimeField(null=True, blank=True)
    # Aggregates whose events this partition passes over since one of them failed, for
    # projectors that park failures by key: {"order:17": {"position", "event_type", "error",
    # "attempts", "parked_at"}}. Staff retry or skip them (apps/cqrs/runtime.py).
    parked = models.JSONField(default=dict, blank=True)

    class Meta:
        abstract = True
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} @ {self.position}"

    def clear_failure(self) -> None:
        self.last_error = ""
        self.failed_position = None
        self.attempts = 0
        self.retry_at = None


class ProjectorCheckpoint(Checkpoint):
    """How far one projector has read the log. Lives in the read database (config/db_router.py)
    and moves in the same transaction as the projector's rows."""


class ReadModelVersion(models.Model):
    """Which version of a projector's read model serves reads, and the one built beside it.

    Lives in the read database, with the read models and their checkpoints. A projector declares
    its `version`; when it differs from the one here, a build starts in the background
    (apps/cqrs/blue_green.py), and the switch to it moves `version` on."""

    class State(models.TextChoices):
        NONE = "", "-"
        BUILDING = "building", "Building"
        FAILED = "failed", "Failed"

    name = models.CharField(max_length=100, primary_key=True, help_text="The projector's name.")
    version = models.PositiveIntegerField(help_text="The version serving reads.")
    building = models.PositiveIntegerField(null=True, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    switched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class SubscriberCheckpoint(Checkpoint):
    """How far one subscriber has read the log. Lives in the write database, where its
    commands write, and moves in the same transaction as they do."""


class IdempotencyKey(models.Model):
    """The first response to a command sent with an Idempotency-Key, replayed for repeats.

    Scoped to the user who sent it; `request_hash` tells a repeat from a different request that
    reuses the key."""

    user_id = models.BigIntegerField()
    key = models.CharField(max_length=100)
    command = models.CharField(max_length=100)
    request_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField(encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user_id", "key"], name="idempotency_key_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.command})"


# What projectors read of an event (`Projector.apply_batch`, `key_of`, `partition_of`). A
# replay loads only these: the ids and names that trace an event to its command (three UUIDs
# and three strings an event) are for the live runners' logs and the subscribers' causation
# (loading the whole log without them: 0.94 -> 0.66 s of CPU).
PROJECTED_FIELDS = (
    "position",
    "aggregate_type",
    "aggregate_id",
    "event_type",
    "schema_version",
    "payload",
    "recorded_at",
)


_ALL_FIELDS = [field.attname for field in DomainEvent._meta.concrete_fields]


def load_events(
    events: models.QuerySet[DomainEvent], limit: int, *, fields: Sequence[str] | None = None
) -> list[DomainEvent]:
    """The first `limit` of `events`, read as tuples and made into instances without
    `Model.__init__`, which took a fifth of a replay's time: the same objects, as loaded from
    the database, for projectors, which read them and never save them. With `fields` (e.g.
    PROJECTED_FIELDS), only those are loaded; the others are deferred, read from the database
    if ever used, as with `QuerySet.only()`."""
    names = list(fields or _ALL_FIELDS)
    query = events.values_list(*names)[:limit]
    if connections[events.db].vendor != "postgresql":
        return _loaded(list(query), names, events.db)
    try:
        sql, params = query.query.get_compiler(using=events.db).as_sql()
    except EmptyResultSet:  # e.g. `event_type__in` an empty set
        return []
    rows = _fetch_with_psycopg_loaders(events.db, sql, params)
    return _loaded(rows, _as_fetched(names), events.db)


def load_range(
    *, after: int, upto: int, event_types: Collection[str], limit: int, using: str
) -> list[DomainEvent]:
    """`load_events` of the first `limit` events of `event_types` after position `after` up
    to `upto`, in position order, read with a statement written once: the live runners' shared
    batches read the log this way every few milliseconds, and building and compiling the ORM's
    query took 0.4 ms of CPU each time."""
    if connections[using].vendor != "postgresql":
        events = DomainEvent.objects.using(using).filter(
            position__gt=after, position__lte=upto, event_type__in=event_types
        )
        return load_events(events.order_by("position"), limit)
    params = [after, upto, list(event_types), limit]
    rows = _fetch_with_psycopg_loaders(using, _range_statement(), params)
    return _loaded(rows, _as_fetched(_ALL_FIELDS), using)


@functools.cache
def _range_statement() -> str:
    columns = ", ".join(f'"{field.column}"' for field in DomainEvent._meta.concrete_fields)
    return (
        f'SELECT {columns} FROM "{DomainEvent._meta.db_table}" WHERE "position" > %s'
        ' AND "position" <= %s AND "event_type" = ANY(%s) ORDER BY "position" LIMIT %s'
    )


def _as_fetched(names: Sequence[str]) -> list[str]:
    """The names of columns read by `_fetch_with_psycopg_loaders`, which leaves the payload as
    JSON text for `data` to validate."""
    return [PAYLOAD_TEXT if name == "payload" else name for name in names]


def _loaded(rows: list[tuple[Any, ...]], names: Sequence[str], db: str) -> list[DomainEvent]:
    new = DomainEvent.__new__
    loaded = []
    for values in rows:
        event = new(DomainEvent)
        event.__dict__.update(zip(names, values, strict=True))
        event._state = ModelState()
        event._state.adding, event._state.db = False, db
        loaded.append(event)
    return loaded


# Django loads `timestamptz` with a subclass of psycopg's pure-Python loader, and `jsonb` as
# text for JSONField to parse with the json module: a converter call per row and column. Here
# psycopg's C loader reads the timestamps (a replay's 112,735 events of the listing: 2.7 s of
# CPU, now 1.8 s, with the payloads parsed by pydantic-core), and the payloads stay JSON text,
# which pydantic-core validates into their contracts as it parses (`decode_json`).
_TIMESTAMPTZ = psycopg.adapters.get_loader(
    psycopg.adapters.types["timestamptz"].oid, psycopg.pq.Format.TEXT
)


class _JsonText(psycopg.adapt.Loader):
    def load(self, data: Any) -> bytes:
        return bytes(data)


def _fetch_with_psycopg_loaders(db: str, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The rows of a statement selecting plain fields, converted by psycopg alone."""
    with connections[db].cursor() as cursor:
        cursor.cursor.adapters.register_loader("timestamptz", _TIMESTAMPTZ)
        cursor.cursor.adapters.register_loader("jsonb", _JsonText)
        cursor.execute(sql, params)
        rows: list[tuple[Any, ...]] = cursor.fetchall()
    return rows
