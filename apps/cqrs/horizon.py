"""How far the event log may be read: the horizon below which no event can still appear.

Writers append concurrently: there is no lock around appends. A position is taken at insert and
becomes visible at commit, so transaction A can take position 10, B position 11, B commits
first, and a reader that sees 11 must not move past 10 while A may still commit. It must not
wait for 10 forever either: A may have rolled back, or died, and then 10 never appears.

The reader proves it with PostgreSQL's own lock table (docs/decisions/
0001-concurrent-appends-and-the-log-horizon.md weighs the alternatives):

1. Every insert into the log holds a ROW EXCLUSIVE lock on the log's table from before it takes
   its position (the lock is taken when the INSERT is planned, the position when it runs) until
   its transaction ends, committed or rolled back.
2. One statement reads the positions after the reader's start with its snapshot S. A gap is a
   missing position N below a visible one M. Whoever holds N took it before M was taken, so
   before M committed, so before S: if it is still running, it has held the lock since before
   S. The same statement then lists, from `pg_locks`, the transactions holding that lock now.
3. If none does, N's holder has ended: a later snapshot (the batch's own read) sees N, or N
   will never exist. So every position up to M is settled. Otherwise the reader reads up to
   the first gap. Stuck at the gap itself, a caller that may wait polls `pg_locks` until those
   very transactions (by virtual transaction id) have ended, as CREATE INDEX CONCURRENTLY waits
   for lockers, re-reading meanwhile in case the gap fills; worker tasks do not wait (a commit
   wakes them). Transactions that start appending later are not waited for.

A transaction that never wrote to the log holds no such lock, so a session idle in transaction
for minutes never holds a reader back. A writer killed between its insert and its commit holds
the lock until PostgreSQL has rolled it back, and not a moment longer. Nothing here is a time-out:
the only wait is for transactions that were appending when the gap was seen.

Positions up to the horizon never change again (visible stays visible; a rolled-back position is
never issued again), so readers keep it in one row (`LogHorizon`), moved every
`STORE_EVERY` positions: a replay then reads the settled log without looking for gaps in it.

SQLite, the embedded default, has one writer at a time, so everything up to the newest visible
position is settled there.
"""

import time
from dataclasses import dataclass

from django.db import connections
from django.db.backends.utils import CursorWrapper
from django.db.models import Max

from apps.cqrs.models import DomainEvent, LogHorizon

WRITE_ALIAS = "default"
SCAN_ROWS = 5000  # positions looked at per call; a reader far behind goes on with `more`
STORE_EVERY = 1000  # positions the stored horizon may lag the proven one
POLL_SECONDS = 0.005


@dataclass(frozen=True)
class Horizon:
    position: int  # every event up to here is visible, or never will be
    more: bool  # the scan stopped at SCAN_ROWS: more of the log may be readable at once
    blocked_at: int | None = None  # the first position a live transaction may still fill


# Who holds ROW EXCLUSIVE on the log now (`pg_locks` lists fast-path locks too), but this session.
_APPENDERS = f"""
SELECT virtualtransaction FROM pg_locks
WHERE locktype = 'relation' AND granted AND mode = 'RowExclusiveLock'
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND relation = '{DomainEvent._meta.db_table}'::regclass AND pid <> pg_backend_pid()
"""
_SCAN = f"""
WITH stored AS (
    SELECT COALESCE((SELECT position FROM {LogHorizon._meta.db_table} WHERE id = 1), 0) AS position
), settled AS (
    SELECT GREATEST(%(after)s, (SELECT position FROM stored)) AS position
), visible AS (
    SELECT e.position FROM {DomainEvent._meta.db_table} e
    WHERE e.position > (SELECT position FROM settled)
    ORDER BY e.position LIMIT %(rows)s
), steps AS (
    SELECT position, COALESCE(lag(position) OVER (ORDER BY position),
                              (SELECT position FROM settled)) AS before FROM visible
), scan AS (
    SELECT count(*) AS rows, max(position) AS last,
           min(before + 1) FILTER (WHERE position > before + 1) AS first_gap
    FROM steps
)
SELECT (SELECT position FROM stored), (SELECT position FROM settled), rows, last, first_gap,
       -- Read after the snapshot the positions were read with; only when there is a gap.
       CASE WHEN first_gap IS NOT NULL THEN ARRAY({_APPENDERS}) END
FROM scan
"""
_STILL_APPENDING = f"SELECT count(*) FROM ({_APPENDERS}) AS a WHERE virtualtransaction = ANY(%s)"
_STORE = f"""
INSERT INTO {LogHorizon._meta.db_table} (id, position) VALUES (1, %(position)s)
ON CONFLICT (id) DO UPDATE SET position = EXCLUDED.position
WHERE {LogHorizon._meta.db_table}.position < EXCLUDED.position
"""


@dataclass(frozen=True)
class _Scan:
    stored: int
    settled: int
    rows: int
    last: int | None
    first_gap: int | None
    appenders: list[str] | None


def _scan(cursor: CursorWrapper, after: int) -> _Scan:
    cursor.execute(_SCAN, {"after": after, "rows": SCAN_ROWS})
    return _Scan(*cursor.fetchone())


def _still_appending(cursor: CursorWrapper, appenders: list[str]) -> bool:
    if not appenders:
        return False
    cursor.execute(_STILL_APPENDING, [appenders])
    (count,) = cursor.fetchone()
    return bool(count > 0)


def readable_position(*, after: int, wait: float = 0.0) -> Horizon:
    """How far a reader at `after` may read the log now (see the module docstring).

    When a live transaction may still fill the very next position, polls for up to `wait`
    seconds for it to end; a reader that can move at all never waits.
    """
    connection = connections[WRITE_ALIAS]
    if connection.vendor != "postgresql":
        head = DomainEvent.objects.using(WRITE_ALIAS).aggregate(p=Max("position"))["p"] or 0
        return Horizon(position=max(after, head), more=False)
    deadline = time.monotonic() + wait
    with connection.cursor() as cursor:
        scan = _scan(cursor, after)
        if scan.first_gap is not None and scan.appenders:
            # Those appenders were running after the gap was seen: one may still fill it.
            while _all_visible(scan) == scan.settled and time.monotonic() < deadline:
                time.sleep(POLL_SECONDS)
                if not _still_appending(cursor, scan.appenders):
                    break
                # Most gaps fill by themselves within milliseconds: move as soon as one has.
                again = _scan(cursor, after)
                if _all_visible(again) > scan.settled:
                    scan = again
            else:
                return Horizon(_all_visible(scan), more=False, blocked_at=scan.first_gap)
        # No transaction that could fill a gap up to `last` is running: all of it is settled.
        if scan.last is None:
            return Horizon(position=scan.settled, more=False)
        if scan.last - scan.stored >= STORE_EVERY and not connection.in_atomic_block:
            # Outside any transaction only: a subscriber's batch must not hold this row.
            cursor.execute(_STORE, {"position": scan.last})
        return Horizon(position=scan.last, more=scan.rows == SCAN_ROWS)


def _all_visible(scan: _Scan) -> int:
    """The position up to which the scan saw every position."""
    if scan.first_gap is not None:
        return scan.first_gap - 1
    return scan.settled if scan.last is None else scan.last
