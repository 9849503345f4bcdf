"""Positions are taken in one order and committed in another; the runtime must not skip any."""

import random
import threading
import time

import pytest
from django.db import connections, transaction

from apps.cqrs import runtime
from apps.cqrs.models import DomainEvent
from apps.cqrs.projectors import Projector
from tests.factories import add_author, add_book
from tests.projectors import registered

WRITERS = 8
BOOKS_PER_WRITER = 30


class RecordingProjector(Projector):
    """Remembers the position of every event it applies, in the order it applies them."""

    name = "test.recording"
    handles = frozenset({"BookAdded"})

    def __init__(self) -> None:
        self.applied: list[int] = []
        self._lock = threading.Lock()

    def apply(self, event):
        with self._lock:
            self.applied.append(event.position)


@pytest.fixture
def recording_projector():
    with registered(RecordingProjector()) as projector:
        yield projector


@pytest.mark.django_db(transaction=True, databases=["default", "read"])
def test_events_committed_out_of_order_are_applied_once_each_in_position_order(
    recording_projector,
):
    # Given writers that hold their transaction open for a random while after recording, so
    # that they commit in another order than their positions
    author = add_author()
    start = threading.Barrier(WRITERS + 1)
    writers_done = threading.Event()
    errors: list[BaseException] = []

    def write(seed: int) -> None:
        rng = random.Random(seed)
        try:
            start.wait()
            for i in range(BOOKS_PER_WRITER):
                with transaction.atomic():
                    add_book(title=f"Writer {seed} book {i}", authors=[author])
                    time.sleep(rng.uniform(0, 0.004))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    def project() -> None:
        try:
            start.wait()
            while not writers_done.is_set():
                runtime.catch_up(recording_projector, batch_size=7)
            runtime.catch_up(recording_projector, batch_size=7)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    # When they all write while the projector catches up continuously
    threads = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
    projector_thread = threading.Thread(target=project)
    began = time.monotonic()
    for thread in [*threads, projector_thread]:
        thread.start()
    for thread in threads:
        thread.join()
    writers_done.set()
    projector_thread.join()
    elapsed = time.monotonic() - began

    # Then it applied every event exactly once, in position order
    assert not errors, errors
    committed = list(
        DomainEvent.objects.filter(event_type="BookAdded").values_list("position", flat=True)
    )
    assert len(committed) == WRITERS * BOOKS_PER_WRITER
    assert recording_projector.applied == committed
    print(f"\n{len(committed)} events from {WRITERS} writers projected in order in {elapsed:.2f}s")


@pytest.mark.django_db(transaction=True, databases=["default", "read"])
def test_two_runners_at_once_apply_each_event_once(recording_projector):
    author = add_author()
    for i in range(120):
        add_book(title=f"Book {i}", authors=[author])
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        try:
            runtime.catch_up(recording_projector, batch_size=10)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    committed = list(
        DomainEvent.objects.filter(event_type="BookAdded").values_list("position", flat=True)
    )
    assert recording_projector.applied == committed
