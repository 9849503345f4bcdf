"""Writers that commit late, roll back after taking a position, or hold a transaction open for
seconds: the projector skips nothing, applies nothing twice, and never waits for a position
that will not come."""

import random
import threading
import time

import pytest
from django.db import connections, transaction

from apps.cqrs import runtime
from apps.cqrs.models import DomainEvent
from tests.cqrs.test_ordering import RecordingProjector
from tests.factories import add_author, add_book
from tests.projectors import registered

pytestmark = [
    pytest.mark.faults,
    pytest.mark.django_db(transaction=True, databases=["default", "read"]),
]
WRITERS = 8
WRITES_EACH = 40
ROLLBACK_SHARE = 0.15
LONG_HOLD_SECONDS = 3.0


class TimedProjector(RecordingProjector):
    name = "test.timed"

    def __init__(self) -> None:
        super().__init__()
        self.applied_at: dict[int, float] = {}

    def apply(self, event):
        super().apply(event)
        self.applied_at[event.position] = time.monotonic()


@pytest.fixture
def timed_projector():
    with registered(TimedProjector()) as projector:
        yield projector


class RolledBack(Exception):
    pass


def test_late_commits_rollbacks_and_a_long_transaction_lose_nothing(timed_projector, report):
    author = add_author()
    committed_at: dict[int, float] = {}
    rolled_back: list[int] = []
    write_seconds: list[float] = []
    errors: list[BaseException] = []
    start = threading.Barrier(WRITERS + 3)
    writers_done = threading.Event()

    def write_one(title: str, hold: float, roll_back: bool) -> float:
        began = time.monotonic()
        try:
            with transaction.atomic():
                book = add_book(title=title, authors=[author])
                position = DomainEvent.objects.get(
                    event_type="BookAdded", aggregate_id=str(book.pk)
                ).position
                time.sleep(hold)  # between the append and the commit
                if roll_back:
                    raise RolledBack
                transaction.on_commit(lambda: committed_at.__setitem__(position, time.monotonic()))
        except RolledBack:
            rolled_back.append(position)
        return time.monotonic() - began

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        try:
            start.wait()
            for i in range(WRITES_EACH):
                roll_back = rng.random() < ROLLBACK_SHARE
                write_seconds.append(write_one(f"W{seed} #{i}", rng.uniform(0, 0.02), roll_back))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    def long_writer() -> None:
        try:
            start.wait()
            time.sleep(0.3)
            write_one("The long transaction", LONG_HOLD_SECONDS, False)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    catch_up_seconds: list[float] = []

    def projector() -> None:
        try:
            start.wait()
            while not writers_done.is_set():
                began = time.monotonic()
                runtime.catch_up(timed_projector, batch_size=5)
                catch_up_seconds.append(time.monotonic() - began)
                time.sleep(0.005)
            runtime.catch_up(timed_projector)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    threads.append(threading.Thread(target=long_writer))
    runner = threading.Thread(target=projector)
    for thread in [*threads, runner]:
        thread.start()
    start.wait()
    for thread in threads:
        thread.join()
    writers_done.set()
    runner.join()

    assert not errors, errors
    in_log = list(
        DomainEvent.objects.filter(event_type="BookAdded").values_list("position", flat=True)
    )
    # Every committed event was applied once, in position order; no rolled-back one was
    assert timed_projector.applied == in_log
    assert sorted(committed_at) == in_log
    assert not set(rolled_back) & set(timed_projector.applied)
    assert rolled_back  # the log really had holes to step over
    lags = [timed_projector.applied_at[p] - committed_at[p] for p in in_log]
    # A reader is never held back: no catch-up waited for the long transaction to end
    assert max(catch_up_seconds) < LONG_HOLD_SECONDS / 2
    # ... and no writer queued behind the long transaction: appends take no common lock
    assert max(write_seconds) < LONG_HOLD_SECONDS / 3
    report(
        "late and missing positions",
        writers=WRITERS + 1,
        events=len(in_log),
        rolled_back_positions=len(rolled_back),
        long_transaction_seconds=LONG_HOLD_SECONDS,
        max_lag_ms=round(max(lags) * 1000, 1),
        p50_lag_ms=round(sorted(lags)[len(lags) // 2] * 1000, 1),
        longest_catch_up_call_ms=round(max(catch_up_seconds) * 1000, 1),
        longest_write_of_other_writers_seconds=round(max(write_seconds), 2),
    )
