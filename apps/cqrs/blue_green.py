"""Blue-green rebuilds: a new version of a read model is built beside the live one while the
live one keeps serving and projecting; once the new one has caught up, reads switch to it in one
transaction, and the old one is dropped. docs/decisions/0002-blue-green-read-models.md weighs
the ways of doing it; docs/upgrades.md is the deployer's side.

On PostgreSQL:

- `prepare` makes a schema of the build's own, `build_<projector>`, with a copy of each of the
  projector's tables made `LIKE` the live one (columns, defaults, constraints, and the indexes
  that keep keys unique: `switch` makes the others once the replay is done), given the live
  one's triggers, and an empty checkpoint table.
- `into_build` puts that schema first on the builder's search_path. The projector's code runs
  unchanged: its tables and its checkpoints resolve to the build's copies, everything else (the
  log, the other read models) to the live schema. The build's checkpoints are announced to
  nobody, so read-your-writes waits only ever count the live ones.
- `switch` is one transaction: it locks the live checkpoints (live runners of the projector wait),
  catches the build up to the log's horizon, puts the build's checkpoints in place of the live
  ones, moves the live tables out to `retired_<projector>` and the new ones in, renames their
  indexes to the names the migrations gave, records the new version and retires the
  projector's cache entries. From the move to the commit, readers of those tables wait (a few
  milliseconds), then read the new ones; so no reader sees a half-built table, and no cache
  entry made after the cache switch comes from the old tables.
- The retired schema is dropped after the commit.

A build that fails changes nothing that serves: its schema is dropped, the live version goes on,
and the error is kept for the admin. One build per projector runs at a time (an advisory lock held
by the builder's session, so a builder that dies frees it). SQLite, the embedded default, has no
schemas: it rebuilds in place.
"""

import logging
import re
import traceback
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime

import psycopg.errors
from django.db import DatabaseError, OperationalError, connections, transaction
from django.db.backends.utils import CursorWrapper
from django.db.models import QuerySet
from django.utils import timezone

from apps.cqrs import locks, runtime
from apps.cqrs.consistency import head_position, note_checkpoint
from apps.cqrs.dispatch import wake
from apps.cqrs.models import ReadModelVersion
from apps.cqrs.projectors import Projector, _building

logger = logging.getLogger(__name__)
# How long the switch waits for readers still on the live tables before it gives up and tries
# again; readers that arrive meanwhile queue behind it, so it must stay short.
LOCK_TIMEOUT = "2s"
SWITCH_ATTEMPTS = 5
# Indexes a build makes at once after its replay: the listing's two largest took 0.82 s at
# once against 1.34 s one after the other, and a build should leave the database's other
# cores to the live readers.
INDEX_BUILDERS = 2


class BuildFailed(Exception):
    """The new version could not be built or switched to; the live one serves on."""


class BuildRunning(Exception):
    """Another process is building this projector."""


def possible(projector: Projector) -> bool:
    """Whether the projector's database can hold a build beside the live tables."""
    return connections[projector.database].vendor == "postgresql"


def _slug(projector: Projector) -> str:
    return re.sub(r"[^a-z0-9]+", "_", projector.name.lower()).strip("_")


def build_schema(projector: Projector) -> str:
    return f"build_{_slug(projector)}"


def retired_schema(projector: Projector) -> str:
    return f"retired_{_slug(projector)}"


def _drop_schema(projector: Projector, schema: str) -> None:
    connection = connections[projector.database]
    with connection.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {connection.ops.quote_name(schema)} CASCADE")


def _tables(projector: Projector) -> list[str]:
    return [model._meta.db_table for model in projector.models]


def _checkpoint_table(projector: Projector) -> str:
    return projector.checkpoint_model._meta.db_table


def _versions(projector: Projector) -> QuerySet[ReadModelVersion]:
    return ReadModelVersion.objects.using(projector.database)


def _live_schema(projector: Projector) -> str:
    """The schema the live tables are in, even from inside `into_build` (the version table is
    never copied into a build)."""
    with connections[projector.database].cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.oid = to_regclass(%s)",
            [ReadModelVersion._meta.db_table],
        )
        (schema,) = cursor.fetchone()
        return str(schema)


def wanted(projector: Projector) -> bool:
    """Whether a deploy brought a version of the projector that is neither live nor building,
    nor failed already (staff start that one again from the admin)."""
    if not projector.replayable or not possible(projector):
        return False
    row = _versions(projector).filter(name=projector.name).first()
    if row is None or row.version == projector.version:
        return False
    if row.building == projector.version and row.state == ReadModelVersion.State.FAILED:
        return False
    return not running(projector)


def running(projector: Projector) -> bool:
    """Whether some session holds the projector's build lock. Advisory locks belong to a
    database, but pg_locks lists the whole cluster's: a build in another database of the same
    server (a benchmark's, say) is not this one's."""
    with connections[projector.database].cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND classid = %s::oid AND objid = hashtext(%s)::oid AND objsubid = 2)",
            [locks.BUILD, projector.name],
        )
        (held,) = cursor.fetchone()
        return bool(held)


@contextmanager
def build_lock(projector: Projector) -> Iterator[None]:
    with locks.advisory_lock(
        using=projector.database, kind=locks.BUILD, name=projector.name
    ) as held:
        if not held:
            raise BuildRunning(f"{projector.name} is being built by another process.")
        yield


def build(
    projector: Projector, *, on_batch: Callable[[int, int], None] | None = None
) -> runtime.CatchUpResult:
    """Build the projector's read model anew from the log beside the live one and switch reads
    to it (in place on SQLite). Raises BuildRunning when another process is at it, and
    BuildFailed (the live version serving on) when it cannot finish."""
    runtime._ensure_replayable(projector)
    if not possible(projector):
        result = runtime.rebuild(projector, on_batch=on_batch)
        if result.failed_position is not None:
            raise BuildFailed(f"{projector.name} stopped at position {result.failed_position}")
        return result
    with build_lock(projector):
        prepare(projector)
        try:
            with into_build(projector):
                result = runtime.replay(projector, on_batch=on_batch)
            if result.failed_position is not None:
                raise BuildFailed(f"The build stopped at position {result.failed_position}.")
            return switch(projector)
        except BaseException as exc:
            fail(projector, exc)
            raise


def prepare(projector: Projector) -> None:
    """Record the build and make its empty tables, dropping what an interrupted one left."""
    connection = connections[projector.database]
    quote = connection.ops.quote_name
    live, build = quote(_live_schema(projector)), quote(build_schema(projector))
    with transaction.atomic(using=projector.database):
        row, _ = (
            _versions(projector)
            .select_for_update()
            .get_or_create(name=projector.name, defaults={"version": projector.version})
        )
        row.building = projector.version
        row.state = ReadModelVersion.State.BUILDING
        row.started_at = timezone.now()
        row.error = ""
        row.save()
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {build} CASCADE")
            cursor.execute(f"CREATE SCHEMA {build}")
            for table in [*_tables(projector), _checkpoint_table(projector)]:
                cursor.execute(
                    f"CREATE TABLE {build}.{quote(table)} "
                    f"(LIKE {live}.{quote(table)} INCLUDING ALL)"
                )
                _drop_secondary_indexes(cursor, build_schema(projector), table)
                for event, action in _triggers(cursor, _live_schema(projector), table):
                    cursor.execute(f"{event} ON {build}.{quote(table)} {action}")
    logger.info("Building %s v%s beside the live tables", projector.name, projector.version)


@contextmanager
def into_build(projector: Projector) -> Iterator[None]:
    """Project into the build's tables on this thread's connection (see the module docstring)."""
    connection = connections[projector.database]
    schema = connection.ops.quote_name(build_schema(projector))
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('search_path')")
        saved = cursor.fetchone()[0]
        cursor.execute("SELECT set_config('search_path', %s, false)", [f"{schema}, {saved}"])
    token = _building.set(True)
    try:
        yield
    finally:
        _building.reset(token)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('search_path', %s, false)", [saved])
        except DatabaseError:
            connection.close()  # the next connection starts with the default path


def make_ready(projector: Projector) -> None:
    """Ready a replayed build for its switch: the checkpoints a replay split by rows left, one
    a shard, become the projector's; its tables get their indexes and planner statistics (fresh
    tables have none: without them the first queries after the switch would choose their plans
    blind). The longest part of a switch, and one readers never wait for: `rebuild_read_models`
    readies a build as soon as its replay is done, while the others replay."""
    connection = connections[projector.database]
    live, build = _live_schema(projector), build_schema(projector)
    with into_build(projector):
        runtime.repartition(projector)
    with connection.cursor() as cursor:
        for table in _tables(projector):
            _create_secondary_indexes(projector.database, cursor, live, build, table)
            _analyze(projector.database, cursor, build, table)


def switch(projector: Projector, *, ready: bool = False) -> runtime.CatchUpResult:
    """Catch the build up and make it the live version (see the module docstring), readying it
    first unless `ready` says `make_ready` has. Tries again when readers hold the live tables
    longer than LOCK_TIMEOUT."""
    if not ready:
        make_ready(projector)
    for attempt in range(1, SWITCH_ATTEMPTS + 1):
        try:
            result = _switch(projector)
            break
        except OperationalError as exc:
            lock_timeout = isinstance(exc.__cause__, psycopg.errors.LockNotAvailable)
            if not lock_timeout or attempt == SWITCH_ATTEMPTS:
                raise
            logger.warning("Switching %s waited too long for readers; again", projector.name)
    _drop_schema(projector, retired_schema(projector))
    _drop_schema(projector, build_schema(projector))
    for part in projector.partition_list():
        note_checkpoint(part.name, runtime._position(part))
    logger.info("%s v%s serves reads", projector.name, projector.version)
    # Live runners that found the checkpoints locked went away; events since are theirs again.
    wake([projector.name], result.position)
    return result


def _switch(projector: Projector) -> runtime.CatchUpResult:
    connection = connections[projector.database]
    quote = connection.ops.quote_name
    live, build = _live_schema(projector), build_schema(projector)
    retired = retired_schema(projector)
    live_checkpoints = f"{quote(live)}.{quote(_checkpoint_table(projector))}"
    build_checkpoints = f"{quote(build)}.{quote(_checkpoint_table(projector))}"
    mine = "name = %s OR name LIKE %s"
    names = [projector.name, f"{projector.name}[%"]
    with into_build(projector), transaction.atomic(using=projector.database):
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [LOCK_TIMEOUT])
            # From here to the commit, live runners of the projector wait.
            cursor.execute(f"SELECT name FROM {live_checkpoints} WHERE {mine} FOR UPDATE", names)
        result = runtime.replay(projector)
        if result.failed_position is not None:
            raise BuildFailed(f"The build stopped at position {result.failed_position}.")
        with connection.cursor() as cursor:
            for table in _tables(projector):
                _ensure_same_shape(cursor, live, build, table)
            cursor.execute(f"DELETE FROM {live_checkpoints} WHERE {mine}", names)
            cursor.execute(f"INSERT INTO {live_checkpoints} SELECT * FROM {build_checkpoints}")
            cursor.execute(f"DROP SCHEMA IF EXISTS {quote(retired)} CASCADE")
            cursor.execute(f"CREATE SCHEMA {quote(retired)}")
            for table in _tables(projector):
                indexes = _indexes(cursor, live, table)
                name = quote(table)
                cursor.execute(f"ALTER TABLE {quote(live)}.{name} SET SCHEMA {quote(retired)}")
                cursor.execute(f"ALTER TABLE {quote(build)}.{name} SET SCHEMA {quote(live)}")
                _rename_indexes(cursor, live, table, indexes)
        _versions(projector).filter(name=projector.name).update(
            version=projector.version,
            building=None,
            state=ReadModelVersion.State.NONE,
            error="",
            switched_at=timezone.now(),
        )
        # Readers of the tables wait for the commit now, so the cache they refill after this is
        # filled from the new tables.
        projector.finish_replay()
    return result


def _ensure_same_shape(cursor: CursorWrapper, live: str, build: str, table: str) -> None:
    """Refuse a build whose table no longer has the live one's columns and triggers."""
    cursor.execute(
        "SELECT table_schema, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema IN (%s, %s) AND table_name = %s ORDER BY ordinal_position",
        [live, build, table],
    )
    columns = defaultdict(list)
    for schema, column, data_type in cursor.fetchall():
        columns[schema].append((column, data_type))
    if columns[live] != columns[build] or _triggers(cursor, live, table) != _triggers(
        cursor, build, table
    ):
        raise BuildFailed(
            f"{table} changed shape during the build (a migration ran?): build it again."
        )


def _triggers(cursor: CursorWrapper, schema: str, table: str) -> list[tuple[str, ...]]:
    """The definitions of the table's own triggers (the listing's search vectors are set by
    one), each in two: before and after the table's name. `LIKE` copies none: `prepare` makes
    them."""
    cursor.execute(
        "SELECT pg_get_triggerdef(oid) FROM pg_trigger "
        "WHERE tgrelid = to_regclass(%s) AND NOT tgisinternal ORDER BY tgname",
        [f'"{schema}"."{table}"'],
    )
    return [tuple(re.split(r" ON \S+ ", d, maxsplit=1)) for (d,) in cursor.fetchall()]


def _drop_secondary_indexes(cursor: CursorWrapper, build: str, table: str) -> None:
    """A build loads its tables without the indexes that are neither unique nor a constraint's,
    and `switch` makes them once the replay is done: one pass over the rows each, rather than
    one change per row written (the listing's replay: 11.7 s with them, 8.4 s without, then
    1.9 s to make them). Projectors read their own rows by primary key, so a replay does not
    miss them."""
    cursor.execute(
        "SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "WHERE x.indrelid = to_regclass(%s) AND NOT x.indisunique AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)",
        [f'"{build}"."{table}"'],
    )
    for (name,) in cursor.fetchall():
        cursor.execute(f'DROP INDEX "{build}"."{name}"')


def _create_secondary_indexes(
    using: str, cursor: CursorWrapper, live: str, build: str, table: str
) -> None:
    """Give the build's table the live one's indexes it lacks (`_drop_secondary_indexes`),
    and their statistics targets. INDEX_BUILDERS at a time, each on a connection of its own:
    building one is mostly PostgreSQL's CPU on one core (the listing's: 1.9 s one by one)."""
    missing = dict(_indexes(cursor, live, table))
    for _, definition in _indexes(cursor, build, table):
        name = next((n for n, d in missing.items() if d == definition), None)
        if name is None:
            raise BuildFailed(f"{table} lost an index during the build: build it again.")
        del missing[name]

    def create(name: str, definition: str) -> None:
        # Named as the live one is (names are the schema's own); PostgreSQL's default names
        # would meet when two are made at once.
        kind = "UNIQUE INDEX" if definition.startswith("UNIQUE ") else "INDEX"
        body = definition.removeprefix("UNIQUE ")
        try:
            with connections[using].cursor() as own:
                own.execute(f'CREATE {kind} "{name}" ON "{build}"."{table}" {body}')
        finally:
            connections[using].close()  # this thread's connection

    with ThreadPoolExecutor(INDEX_BUILDERS) as builders:
        list(builders.map(create, missing.keys(), missing.values()))  # raises the first error
    _carry_statistics_targets(cursor, live, build, table)


def _carry_statistics_targets(cursor: CursorWrapper, live: str, build: str, table: str) -> None:
    """Neither `LIKE` nor an index made anew gets the live table's statistics targets: those
    of its columns (read_catalog migration 0020: none for columns no query filters on) and
    those of its indexes' columns, from which the planner's estimates for an index expression
    come (0015). Give the build the live ones', indexes matched by definition."""
    _set_column_targets(
        cursor, build, table, [(c, t) for c, t in _column_targets(cursor, live, table) if t >= 0]
    )
    cursor.execute(
        "SELECT i.relname, a.attnum, a.attstattarget FROM pg_index x "
        "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_attribute a ON a.attrelid = i.oid "
        "WHERE x.indrelid = to_regclass(%s) AND a.attstattarget > 0",
        [f'"{live}"."{table}"'],
    )
    targets = cursor.fetchall()
    if not targets:
        return
    definitions = dict(_indexes(cursor, live, table))
    built = {definition: name for name, definition in _indexes(cursor, build, table)}
    for name, column, target in targets:
        cursor.execute(
            f'ALTER INDEX "{build}"."{built[definitions[name]]}" '
            f"ALTER COLUMN {int(column)} SET STATISTICS {int(target)}"
        )


def _column_targets(cursor: CursorWrapper, schema: str, table: str) -> list[tuple[str, int]]:
    """(column, statistics target) of each column of the table; -1 is the default target."""
    cursor.execute(
        "SELECT attname, attstattarget FROM pg_attribute WHERE attrelid = to_regclass(%s) "
        "AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        [f'"{schema}"."{table}"'],
    )
    return [(column, target) for column, target in cursor.fetchall()]


def _set_column_targets(
    cursor: CursorWrapper, schema: str, table: str, targets: list[tuple[str, int]]
) -> None:
    for column, target in targets:
        cursor.execute(
            f'ALTER TABLE "{schema}"."{table}" ALTER COLUMN "{column}" SET STATISTICS {int(target)}'
        )


def _analyze(using: str, cursor: CursorWrapper, build: str, table: str) -> None:
    """Planner statistics for a build's table. ANALYZE samples 300 rows per unit of the highest
    statistics target among the columns and the indexes' expressions, and computes every column
    from that sample: the listing's trigram expression at 1,000 (read_catalog 0015) had all its
    columns computed from 300,000 rows where their own targets ask for 30,000 (1.03 s). So where
    an expression asks for more than the columns, the columns are analyzed on their own first (a
    column list leaves index expressions out), then the expressions, with the columns' targets at
    0 for that pass, which keeps their statistics (0.14 + 0.38 s). In one transaction: the
    targets are never left at 0."""
    columns = [(c, t) for c, t in _column_targets(cursor, build, table) if t != 0]
    cursor.execute(
        "SELECT current_setting('default_statistics_target')::int, "
        "coalesce(max(a.attstattarget), 0) "
        "FROM pg_index x JOIN pg_attribute a ON a.attrelid = x.indexrelid "
        "WHERE x.indrelid = to_regclass(%s) AND x.indexprs IS NOT NULL",
        [f'"{build}"."{table}"'],
    )
    default, expressions = cursor.fetchone()
    if not columns or expressions <= max(default if t < 0 else t for _, t in columns):
        cursor.execute(f'ANALYZE "{build}"."{table}"')
        return
    names = ", ".join(f'"{name}"' for name, _ in columns)
    with transaction.atomic(using=using):
        cursor.execute(f'ANALYZE "{build}"."{table}" ({names})')
        _set_column_targets(cursor, build, table, [(name, 0) for name, _ in columns])
        cursor.execute(f'ANALYZE "{build}"."{table}"')
        _set_column_targets(cursor, build, table, columns)


def _indexes(cursor: CursorWrapper, schema: str, table: str) -> list[tuple[str, str]]:
    """(name, definition without its name and table) of each index of the table."""
    cursor.execute(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x "
        "JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = to_regclass(%s) "
        "ORDER BY i.relname",
        [f'"{schema}"."{table}"'],
    )
    return [
        (name, re.sub(r"^CREATE (UNIQUE )?INDEX \S+ ON \S+ ", r"\1", definition))
        for name, definition in cursor.fetchall()
    ]


def _rename_indexes(
    cursor: CursorWrapper, schema: str, table: str, old: list[tuple[str, str]]
) -> None:
    """Give the moved table's indexes the names the live table's had (LIKE names them anew),
    matching them by definition: migrations find them by those names."""
    wanted: dict[str, list[str]] = defaultdict(list)
    for name, definition in old:
        wanted[definition].append(name)
    new = _indexes(cursor, schema, table)
    renames = []
    for name, definition in new:
        if not wanted[definition]:
            raise BuildFailed(f"{table} gained an index during the build: build it again.")
        renames.append((name, wanted[definition].pop(0)))
    if any(wanted.values()):
        raise BuildFailed(f"{table} lost an index during the build: build it again.")
    # Through temporary names, so that no new name meets an old one still in place.
    for step, (name, _) in enumerate(renames):
        cursor.execute(f'ALTER INDEX "{schema}"."{name}" RENAME TO "cqrs_switch_{step}"')
    for step, (_, target) in enumerate(renames):
        cursor.execute(f'ALTER INDEX "{schema}"."cqrs_switch_{step}" RENAME TO "{target}"')


def fail(projector: Projector, cause: BaseException) -> None:
    """Record a failed build and drop its tables; the live version is untouched."""
    with suppress(DatabaseError):
        _drop_schema(projector, build_schema(projector))
    with suppress(DatabaseError):
        _versions(projector).filter(name=projector.name).update(
            state=ReadModelVersion.State.FAILED,
            error="".join(traceback.format_exception(cause))[-4000:],
        )
    logger.error("Building %s v%s failed: %r", projector.name, projector.version, cause)


@dataclass(frozen=True)
class BuildStatus:
    projector: str
    live: int  # the version serving reads
    declared: int  # the version the running code declares
    building: int | None
    state: str
    started_at: datetime | None
    switched_at: datetime | None
    error: str
    positions: dict[str, int]  # the build's checkpoints, while it runs
    head: int

    @property
    def progress(self) -> float | None:
        """How far the build has read the log, 0 to 1 (its slowest partition)."""
        if self.state != ReadModelVersion.State.BUILDING or not self.positions:
            return None
        return min(self.positions.values()) / self.head if self.head else 1.0


def status(projectors: list[Projector]) -> list[BuildStatus]:
    """Per replayable projector: the live and declared versions, and the build under way."""
    head = head_position()
    rows = []
    for projector in projectors:
        if not projector.replayable:
            continue
        row = _versions(projector).filter(name=projector.name).first()
        building = row is not None and row.state == ReadModelVersion.State.BUILDING
        rows.append(
            BuildStatus(
                projector=projector.name,
                live=row.version if row else projector.version,
                declared=projector.version,
                building=row.building if row else None,
                state=row.state if row else "",
                started_at=row.started_at if row else None,
                switched_at=row.switched_at if row else None,
                error=row.error if row else "",
                positions=build_positions(projector) if building and possible(projector) else {},
                head=head,
            )
        )
    return rows


def build_positions(projector: Projector) -> dict[str, int]:
    """The checkpoints of the projector's build under way, by name ({} when there is none)."""
    connection = connections[projector.database]
    quote = connection.ops.quote_name
    table = f"{quote(build_schema(projector))}.{quote(_checkpoint_table(projector))}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [table])
        if not cursor.fetchone()[0]:
            return {}
        cursor.execute(f"SELECT name, position FROM {table}")
        return dict(cursor.fetchall())
