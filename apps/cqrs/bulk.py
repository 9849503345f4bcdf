"""Writing many rows at once."""

from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from functools import cache, lru_cache
from typing import Any, TypeVar

from django.db import connections, router
from django.db.models import NOT_PROVIDED, JSONField, Model
from django.db.models.base import ModelState
from django.db.models.fields import AutoFieldMixin

M = TypeVar("M", bound=Model)


def new_row(model: type[M], **values: object) -> M:
    """An unsaved instance of `model` with `values` (by attribute name) and every other
    field's default: what `model(**values)` makes, without `Model.__init__` and its keyword
    handling (9.7 µs against 1.6 µs; a replay makes one per book). For models whose fields
    need nothing at init (no post_init receivers: file, image or generic relation fields)."""
    row = model.__new__(model)
    attributes = row.__dict__
    for name, default in _defaults(model):
        if name not in values:
            attributes[name] = default()
    attributes.update(values)
    row._state = ModelState()
    return row


@cache
def _defaults(model: type[Model]) -> tuple[tuple[str, Callable[[], object]], ...]:
    return tuple((f.attname, f.get_default) for f in model._meta.concrete_fields)


def copy_rows(
    *, using: str, table: str, columns: Sequence[str], rows: Iterable[Sequence[object]]
) -> None:
    """Insert rows with PostgreSQL's COPY, values given in the order of `columns`."""
    connection = connections[using]
    quote = connection.ops.quote_name
    sql = f"COPY {quote(table)} ({', '.join(map(quote, columns))}) FROM STDIN"
    with connection.cursor() as cursor, cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)


def save_rows(
    model: type[Model],
    rows: Sequence[Model],
    *,
    new: AbstractSet[object],
    update_fields: list[str],
    using: str,
) -> None:
    """Write projector rows: those whose primary key is in `new` (not in the table yet) with
    PostgreSQL's COPY, the rest with one INSERT ... ON CONFLICT DO UPDATE.

    A replay creates nearly every row it writes, and COPY takes them several times faster than
    an INSERT with bound parameters. The caller must be the table's only writer (a projector
    holding its checkpoint lock), or a row it thinks new could appear meanwhile.
    """
    connection = connections[using]
    if connection.vendor != "postgresql":
        model._default_manager.using(using).bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=[model._meta.pk.name],
            update_fields=update_fields,
        )
        return
    fields = model._meta.concrete_fields
    names = [f.attname for f in fields]
    # psycopg writes strings, numbers, decimals, dates and UUIDs as they are; only JSON
    # needs the field's conversion. A call per field and row took a tenth of a replay.
    json_fields = [(i, f) for i, f in enumerate(fields) if isinstance(f, JSONField)]

    def values(row: Model) -> list[object]:
        values = [getattr(row, name) for name in names]
        for i, field in json_fields:
            values[i] = field.get_db_prep_save(values[i], connection)
        return values

    fresh = [row for row in rows if row.pk in new]
    if fresh:
        copy_rows(
            using=using,
            table=model._meta.db_table,
            columns=[f.column for f in fields],
            rows=map(values, fresh),
        )
    stored = [row for row in rows if row.pk not in new]
    with connection.cursor() as cursor:
        for start in range(0, len(stored), UPSERT_ROWS):
            chunk = stored[start : start + UPSERT_ROWS]
            sql = _upsert(model, tuple(update_fields), len(chunk), using)
            params: list[Any] = [value for row in chunk for value in values(row)]
            cursor.execute(sql, params)


# Rows per upsert statement: well under PostgreSQL's 65,535 parameters for any read model, and
# few enough statements (one per row count) for `_upsert` to keep.
UPSERT_ROWS = 100


@lru_cache(maxsize=512)
def _upsert(model: type[Model], update_fields: tuple[str, ...], rows: int, using: str) -> str:
    """INSERT of `rows` rows of every column, ON CONFLICT of the primary key DO UPDATE of
    `update_fields`: what bulk_create(update_conflicts=True) sends, which the ORM compiled on
    every batch (8 % of the worker's CPU under a stream of orders, py-spy)."""
    quote = connections[using].ops.quote_name
    fields = model._meta.concrete_fields
    by_name = {f.name: f.column for f in fields}
    updates = ", ".join(
        f"{quote(by_name[name])} = EXCLUDED.{quote(by_name[name])}" for name in update_fields
    )
    return (
        f"{_insert(model, fields, rows, using)}"
        f" ON CONFLICT ({quote(model._meta.pk.column)}) DO UPDATE SET {updates}"
    )


def _insert(model: type[Model], fields: Sequence[Any], rows: int, using: str) -> str:
    """INSERT INTO the model's table of `rows` rows of `fields`' columns, as parameters."""
    quote = connections[using].ops.quote_name
    one_row = f"({', '.join(['%s'] * len(fields))})"
    return (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)})"
        f" VALUES {', '.join([one_row] * rows)}"
    )


def insert_rows(rows: Sequence[Model]) -> None:
    """Insert new `rows` of one model as `bulk_create(rows)` does: each field's `pre_save`
    (timestamps) and database value, the primary keys set from what the database returns, no
    model signals. One statement per model and row count, written once: the ORM compiled an
    order's two inserts on every request (10 % of its CPU under py-spy, decision 0016).
    PostgreSQL only, and for models without database defaults; elsewhere `bulk_create` runs."""
    if not rows:
        return
    model = type(rows[0])
    alias = router.db_for_write(model)
    connection = connections[alias]
    fields = _inserted_fields(model, alias)
    if fields is None:
        model._default_manager.using(alias).bulk_create(rows)
        return
    params = [
        field.get_db_prep_save(field.pre_save(row, True), connection)
        for row in rows
        for field in fields
    ]
    with connection.cursor() as cursor:
        cursor.execute(_insert_returning(model, alias, len(rows)), params)
        keys = cursor.fetchall()
    for row, (key,) in zip(rows, keys, strict=True):
        row.pk = key
        row._state.adding, row._state.db = False, alias


@cache
def _inserted_fields(model: type[Model], alias: str) -> list[Any] | None:
    """The fields an insert gives values for (all but an automatic primary key), or None when
    the ORM must do it."""
    fields = model._meta.concrete_fields
    if connections[alias].vendor != "postgresql" or any(
        f.db_default is not NOT_PROVIDED for f in fields
    ):
        return None
    return [f for f in fields if not isinstance(f, AutoFieldMixin)]


@lru_cache(maxsize=64)
def _insert_returning(model: type[Model], alias: str, rows: int) -> str:
    fields = _inserted_fields(model, alias) or []
    quote = connections[alias].ops.quote_name
    return f"{_insert(model, fields, rows, alias)} RETURNING {quote(model._meta.pk.column)}"


def add_to_rows(
    model: type[Model],
    rows: Sequence[dict[str, object]],
    *,
    key: Sequence[str],
    added: Sequence[str],
    using: str,
) -> None:
    """Insert rows given as {field: value}, or, where a row with the same `key` exists, add
    their `added` fields to its own: one INSERT ... ON CONFLICT DO UPDATE SET f = f + new f
    (PostgreSQL and SQLite alike). Sums a projector keeps per day need no read first, and the
    addition happens in the row, so it is correct whatever another batch added before."""
    if not rows:
        return
    connection = connections[using]
    quote = connection.ops.quote_name
    by_name = {f.name: f for f in model._meta.concrete_fields}
    fields = [by_name[name] for name in rows[0]]
    table = quote(model._meta.db_table)
    one_row = f"({', '.join(['%s'] * len(fields))})"
    updates = ", ".join(
        f"{quote(f.column)} = {table}.{quote(f.column)} + EXCLUDED.{quote(f.column)}"
        for f in fields
        if f.name in added
    )
    sql = (
        f"INSERT INTO {table} ({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES {', '.join([one_row] * len(rows))} "
        f"ON CONFLICT ({', '.join(quote(by_name[k].column) for k in key)}) "
        f"DO UPDATE SET {updates}"
    )
    params = [f.get_db_prep_save(row[f.name], connection) for row in rows for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
