"""Concurrent appends against the reader's gap check, with real processes: 32 writers commit in
another order than they take positions, some roll back after appending, one holds its
transaction for seconds, and an unrelated session sits idle in transaction. The reader applies
every committed event once, in an order that never inverts an aggregate's versions, and is not
held back by the idle session.

A writer killed between its append and its commit is passed as soon as PostgreSQL has rolled it
back (`test_reader_passes_a_killed_writer_once_postgresql_has_rolled_it_back`)."""

import multiprocessing
import random
import threading
import time

import psycopg
import pytest
from django.db import connection, connections, transaction

from apps.cqrs import runtime
from apps.cqrs.context import scope
from apps.cqrs.models import DomainEvent
from apps.cqrs.projectors import Projector
from apps.write.inventory.services import stock_receive
from tests.factories import add_author, add_book
from tests.projectors import registered

pytestmark = [
    pytest.mark.faults,
    pytest.mark.django_db(transaction=True, databases=["default", "read"]),
]
WRITERS = 32
BOOKS = 8  # aggregates the writers share: each command locks its book's stock row
WRITE_SECONDS = 14.0
HOLD_SECONDS = (0.0, 0.05)  # between the append and the commit
ROLLBACK_SHARE = 0.15
IDLE_FROM, IDLE_SECONDS = 0.5, 10.0
LONG_AFTER_IDLE, LONG_HOLD_SECONDS = 1.0, 5.0
MAX_LAG_WHILE_IDLE = 1.0


class RecordingStockProjector(Projector):
    """Remembers what it applied, in order, and when."""

    name = "test.torture"
    handles = frozenset({"StockReceived"})

    def __init__(self) -> None:
        self.applied: list[tuple[int, str, int]] = []  # position, aggregate, version
        self.applied_at: dict[int, float] = {}

    def apply(self, event):
        self.applied.append((event.position, event.aggregate_id, event.aggregate_version))
        self.applied_at[event.position] = time.monotonic()


@pytest.fixture
def torture_projector():
    with registered(RecordingStockProjector()) as projector:
        yield projector


class RolledBack(Exception):
    pass


def append_and_hold(book_id: int, hold: float, roll_back: bool, results, on_appended=None):
    """One command on `book_id`, then `hold` seconds inside the transaction, then commit or
    roll back; the outcome goes to `results` as (kind, position, monotonic time)."""
    try:
        with transaction.atomic():
            with scope() as meta:
                stock_receive(actor=None, book_id=book_id, quantity=1)
            position = meta.last_position
            if on_appended:
                on_appended(position)
            time.sleep(hold)
            if roll_back:
                raise RolledBack
    except RolledBack:
        results.put(("rolled back", position, time.monotonic()))
    else:
        results.put(("committed", position, time.monotonic()))


def writer(seed: int, books: list[int], until: float, results) -> None:
    rng = random.Random(seed)
    connections.close_all()  # the parent's sockets are not ours
    try:
        while time.monotonic() < until:
            hold, roll_back = rng.uniform(*HOLD_SECONDS), rng.random() < ROLLBACK_SHARE
            append_and_hold(rng.choice(books), hold, roll_back, results)
            time.sleep(rng.uniform(0, 0.03))
    finally:
        connections.close_all()


def long_writer(book_id: int, idle_done, results) -> None:
    connections.close_all()
    # Well after the idle session: a reader waits behind a late commit by design, and that wait
    # is measured on its own, not counted against the idle session.
    idle_done.wait(timeout=60)
    time.sleep(LONG_AFTER_IDLE)

    def appended(position):
        results.put(("long appended", position, time.monotonic()))

    append_and_hold(book_id, LONG_HOLD_SECONDS, False, results, appended)
    connections.close_all()


def idle_in_transaction(dsn: str, start_at: float, seconds: float, results, done) -> None:
    """A session that writes (so it has a transaction id) but never touches the log, then sits
    idle in its transaction."""
    time.sleep(max(start_at - time.monotonic(), 0))
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TEMP TABLE scratch (x int)")
        conn.execute("INSERT INTO scratch VALUES (1)")
        xid = conn.execute("SELECT pg_current_xact_id()::text").fetchone()[0]
        results.put(("idle from", int(xid), time.monotonic()))
        time.sleep(seconds)
        results.put(("idle until", int(xid), time.monotonic()))
        conn.rollback()
    done.set()


def dsn() -> str:
    s = connection.settings_dict
    return (
        f"host={s['HOST'] or '127.0.0.1'} port={s['PORT'] or 5432} dbname={s['NAME']} "
        f"user={s['USER']} password={s['PASSWORD']}"
    )


def drain(results) -> list[tuple]:
    out = []
    while not results.empty():
        out.append(results.get())
    return out


def test_torture_every_committed_event_once_in_version_order(torture_projector, report):
    author = add_author()
    books = [add_book(title=f"Torture {i}", authors=[author]).pk for i in range(BOOKS + 1)]
    shared, long_book = books[:BOOKS], books[BOOKS]
    runtime.catch_up(torture_projector)
    torture_projector.applied.clear()
    connections.close_all()

    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    began = time.monotonic()
    processes = [
        ctx.Process(target=writer, args=(n, shared, began + WRITE_SECONDS, results))
        for n in range(WRITERS)
    ]
    idle_done = ctx.Event()
    processes.append(ctx.Process(target=long_writer, args=(long_book, idle_done, results)))
    processes.append(
        ctx.Process(
            target=idle_in_transaction,
            args=(dsn(), began + IDLE_FROM, IDLE_SECONDS, results, idle_done),
        )
    )
    for process in processes:
        process.start()

    errors: list[BaseException] = []
    done = threading.Event()
    idle_seen: list[tuple] = []

    def read() -> None:
        try:
            while not done.is_set():
                runtime.catch_up(torture_projector, batch_size=50)
                time.sleep(0.002)
            runtime.catch_up(torture_projector)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    def watch_idle_session() -> None:
        # Evidence that the unrelated session really sat idle in a transaction with an id.
        with psycopg.connect(dsn(), autocommit=True) as conn:
            while not done.is_set():
                idle_seen.extend(
                    conn.execute(
                        "SELECT backend_xid::text FROM pg_stat_activity WHERE datname = "
                        "current_database() AND state = 'idle in transaction' AND "
                        "backend_xid IS NOT NULL"
                    ).fetchall()
                )
                time.sleep(0.5)

    reader = threading.Thread(target=read)
    watcher = threading.Thread(target=watch_idle_session)
    reader.start()
    watcher.start()
    outcomes = []
    while any(p.is_alive() for p in processes):
        outcomes += drain(results)
        time.sleep(0.05)
    for process in processes:
        process.join()
        assert process.exitcode == 0
    outcomes += drain(results)
    done.set()
    reader.join()
    watcher.join()
    elapsed = time.monotonic() - began

    assert not errors, errors
    committed = {pos: at for kind, pos, at in outcomes if kind == "committed"}
    rolled_back = {pos for kind, pos, _ in outcomes if kind == "rolled back"}
    idle = {kind: (xid, at) for kind, xid, at in outcomes if kind.startswith("idle")}
    long_position, long_appended_at = next(
        (pos, at) for kind, pos, at in outcomes if kind == "long appended"
    )
    in_log = list(
        DomainEvent.objects.filter(event_type="StockReceived", position__gt=min(committed) - 1)
        .values_list("position", flat=True)
        .order_by("position")
    )
    applied = [position for position, _, _ in torture_projector.applied]

    # Every committed event was applied exactly once, in position order; no rolled-back one
    assert sorted(committed) == in_log
    assert applied == in_log
    assert rolled_back
    assert not rolled_back & set(applied)
    # ... in an order that never inverts an aggregate's versions, which have no gaps
    versions: dict[str, list[int]] = {}
    for _, aggregate, version in torture_projector.applied:
        versions.setdefault(aggregate, []).append(version)
    for seen in versions.values():
        assert seen == list(range(seen[0], seen[0] + len(seen)))
    # The unrelated session sat idle in a transaction with an id, and held nobody back
    idle_xid, idle_from = idle["idle from"]
    _, idle_until = idle["idle until"]
    assert (str(idle_xid),) in idle_seen
    # (the long transaction holds readers back by design: it came after, and is measured below)
    while_idle = [
        p for p, at in committed.items() if idle_from <= at <= min(idle_until, long_appended_at)
    ]
    lags_while_idle = [torture_projector.applied_at[p] - committed[p] for p in while_idle]
    assert len(while_idle) > 100
    assert max(lags_while_idle) < MAX_LAG_WHILE_IDLE
    # How long readers waited behind a late commit: events after the long transaction's position
    behind_long = [
        torture_projector.applied_at[p] - at
        for p, at in committed.items()
        if p > long_position and at < committed[long_position]
    ]
    lags = sorted(torture_projector.applied_at[p] - committed[p] for p in committed)
    report(
        "torture: concurrent appends",
        writers=WRITERS + 1,
        seconds=round(elapsed, 1),
        committed=len(committed),
        rolled_back=len(rolled_back),
        committed_per_second=round(len(committed) / WRITE_SECONDS),
        aggregates=len(versions),
        lag_p50_ms=round(lags[len(lags) // 2] * 1000, 1),
        lag_p99_ms=round(lags[int(len(lags) * 0.99)] * 1000, 1),
        lag_max_while_idle_ms=round(max(lags_while_idle) * 1000, 1),
        lag_max_behind_the_long_transaction_s=round(max(behind_long, default=0), 2),
    )


def test_reader_passes_a_killed_writer_once_postgresql_has_rolled_it_back(
    torture_projector, report
):
    author = add_author()
    first, second = (add_book(title=f"Kill {i}", authors=[author]).pk for i in range(2))
    runtime.catch_up(torture_projector)
    start = runtime.head_position()
    connections.close_all()
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()

    def appended(position):
        results.put(("appended", position, connection.connection.info.backend_pid))

    # Given a writer that appended and now sits in its transaction, and a later commit
    victim = ctx.Process(
        target=append_and_hold, args=(first, 3600, False, results, appended), daemon=True
    )
    victim.start()
    try:
        _, held_position, backend_pid = results.get(timeout=10)
        append_and_hold(second, 0, False, results)
        assert results.get(timeout=10)[0] == "committed"
        # Then the reader does not pass the held position while its writer lives
        held_for = time.monotonic() + 1.0
        while time.monotonic() < held_for:
            result = runtime.catch_up(torture_projector)
            assert result.position < held_position
        # When PostgreSQL ends the writer's backend
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s, 5000)", [backend_pid])
            assert cursor.fetchone()[0]
        killed_at = time.monotonic()
        # Then the next catch-up passes it, and applies the later event
        result = runtime.catch_up(torture_projector)
        passed_after = time.monotonic() - killed_at
    finally:
        victim.kill()
        victim.join()
    assert result.position > held_position > start
    assert not DomainEvent.objects.filter(position=held_position).exists()
    assert [p for p, _, _ in torture_projector.applied][-1] > held_position
    report("torture: killed writer", passed_after_ms=round(passed_after * 1000, 1))
