"""A slot's wake-up runs its read models in shared batches (runtime.catch_up_together)."""

import threading
import time
from functools import partial

import pytest
from django.core.cache import cache
from django.db import connections, transaction
from django.test.utils import CaptureQueriesContext

from apps.cqrs import locks, runtime, tasks
from apps.cqrs.dispatch import wake_pending_key
from apps.cqrs.models import DomainEvent, ProjectorCheckpoint
from apps.cqrs.projectors import Partition, Projector, key_partition, registry
from apps.read.catalog.models import BookListing
from apps.read.reports.models import StockLevel
from config.cache import take_members
from tests.conftest import another_session
from tests.cqrs.test_runtime import (
    BlockingProjector,
    FailingProjector,
    listing_rows,
    make_history,
    start_busy_runner,
)
from tests.factories import add_author, add_book
from tests.projectors import registered

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "read"])


def every_slot() -> list:
    return [part for slot in registry.slots() for part in registry.slot(*slot)]


def positions() -> dict[str, int]:
    return dict(ProjectorCheckpoint.objects.values_list("name", "position"))


def first_runs() -> None:
    """Every slot's first run, which makes the checkpoints one by one."""
    for slot in registry.slots():
        runtime.catch_up_together(registry.slot(*slot))


@pytest.mark.parametrize("batch_size", [500, 7])
def test_a_slot_gives_the_tables_each_projector_gives_alone(settings, batch_size):
    """With 7 events to a batch the shared read of the log comes back full, and every partition
    goes on alone: the same tables either way."""
    settings.CQRS_BATCH_SIZE = batch_size
    make_history(books=30)

    applied = runtime.catch_up_together(every_slot())

    together = listing_rows()
    runtime.rebuild(registry.get("catalog.book_listing"))
    assert len(together) == 30
    assert together == listing_rows()
    assert StockLevel.objects.count() == 30
    head = runtime.head_position()
    assert set(positions().values()) == {head}
    assert applied > 30


def test_the_read_models_of_a_slot_share_one_transaction():
    slot = registry.slot("projections", 0)
    assert len(slot) >= 3
    runtime.catch_up_together(slot)  # their first run makes their checkpoints, one by one
    make_history(books=3)

    with CaptureQueriesContext(connections["read"]) as read:
        applied = runtime.catch_up_together(slot)

    assert applied >= 3  # the three books, at least, counted from the shared batch
    statements = [q["sql"] for q in read.captured_queries]
    # One transaction for all of them, and one statement to move their checkpoints.
    assert [s for s in statements if s.startswith("BEGIN")] == ["BEGIN"]
    assert len([s for s in statements if s.startswith('UPDATE "cqrs_projectorcheckpoint"')]) == 1
    assert {positions()[part.name] for part in slot} == {runtime.head_position()}


def test_a_failing_projector_stops_alone_and_the_others_in_its_slot_go_on():
    with registered(FailingProjector()) as failing:
        author = add_author()
        for title in ["One", "Two", "Poison", "Four"]:
            add_book(title=title, authors=[author])
        poison = DomainEvent.objects.get(event_type="BookAdded", payload__title="Poison")

        runtime.catch_up_together(registry.slot("projections", 0))

        # The shared batch rolled back; alone, the failing one kept what came before the poison
        assert failing.applied == ["One", "Two"]
        checkpoint = ProjectorCheckpoint.objects.get(name=failing.name)
        assert checkpoint.failed_position == poison.position
        assert checkpoint.position < poison.position
        # ... and the listing went on to the head
        assert BookListing.objects.count() == 4
        assert positions()["catalog.book_listing"] == runtime.head_position()

        # Stopped at a failure, it goes alone while the others share the next batches
        add_book(title="Five", authors=[author])
        runtime.catch_up_together(registry.slot("projections", 0))
        assert BookListing.objects.count() == 5
        assert failing.applied == ["One", "Two"]  # its retry time has not come


def test_a_partition_another_runner_holds_is_passed_over_and_takes_another_pass():
    projector = BlockingProjector()
    with registered(projector):
        author = add_author()
        add_book(title="First", authors=[author])
        busy = start_busy_runner(projector)
        try:
            add_book(title="Second", authors=[author])

            # The slot's wake-up does not wait for the busy partition
            started = time.monotonic()
            runtime.catch_up_together(registry.slot("projections", 0))
            assert time.monotonic() - started < 5
            assert busy.is_alive()
            assert BookListing.objects.count() == 2
        finally:
            projector.release.set()
            busy.join(10)
        # ... and the runner at work took another pass for the second book
        assert projector.applied == ["First", "Second"]
        assert positions()[projector.name] == runtime.head_position()


class PartitionedAuthors(Projector):
    """Two partitions by author, of an event type no other projector reads; partition 0 holds
    its first batch open until released."""

    name = "test.partitioned"
    handles = frozenset({"AuthorAdded"})
    partitions = 2

    def __init__(self) -> None:
        self.started, self.release = threading.Event(), threading.Event()
        self.applied: list[str] = []

    def apply(self, event):
        if self.partition_of(event).index == 0 and not self.started.is_set():
            self.started.set()
            self.release.wait(10)
        name = event.payload["name"]
        transaction.on_commit(lambda: self.applied.append(name), using="read")


class FailingOnceAuthors(PartitionedAuthors):
    """PartitionedAuthors whose held batch fails once released."""

    failed = False

    def apply(self, event):
        super().apply(event)
        if not self.failed:
            self.failed = True
            raise RuntimeError("a batch that fails once")


def authors_in_both_partitions() -> list:
    """Authors whose events go to each of PartitionedAuthors' two partitions."""
    authors = [add_author(name=f"Author {i}") for i in range(12)]
    assert {key_partition(str(a.pk), 2) for a in authors} == {0, 1}
    return authors


def test_a_sibling_moves_along_only_with_a_batch_that_read_its_event_types():
    """Slot 0's batch finds the projector's own partition busy: it reads the log for the
    listing's event types only, so it must leave partition 1 alone (found by CI: an order's
    payment was passed over in the order history)."""
    projector = PartitionedAuthors()
    with registered(projector):
        first_runs()
        authors = authors_in_both_partitions()

        busy = start_busy_runner(projector, partial(runtime.catch_up, projector, partition=0))
        try:
            add_book(title="Kindred", authors=authors[:1])
            runtime.catch_up_together(registry.slot("projections", 0))
        finally:
            projector.release.set()
            busy.join(10)
        runtime.catch_up_together(registry.slot("projections", 1))

        assert sorted(projector.applied) == sorted(a.name for a in authors)


def test_one_runner_at_a_time_works_through_a_slots_backlog(settings):
    """A runner that finds another at work on its slot's backlog gives each partition one
    batch, leaves their names beside the slot's lock and returns, freeing its worker process
    for another slot's task (tests/faults/test_partition_workers.py failed three times in five
    without this). The runner at work takes the names when it lets go of the lock."""
    settings.CQRS_BATCH_SIZE = 7
    slot = registry.slot("projections", 0)
    listing = next(part for part in slot if part.name == "catalog.book_listing")
    runtime.catch_up_together(slot)  # first runs: the checkpoints
    take_members(cache, runtime.SLOT_PASS_KEY.format(queue="projections", index=0))
    make_history(books=30)
    head = runtime.head_position()
    with another_session("default") as other:
        other.execute("SELECT pg_advisory_lock(%s, hashtext('projections:0'))", [locks.SLOT])
        runtime.catch_up_together(slot)
        behind = {part.name for part in slot if positions()[part.name] < head}

    assert {"catalog.book_listing", "reports.figures"} <= behind
    assert all(positions()[name] > 0 for name in behind)  # one batch each, then it returned
    # The runner at work, woken for the listing only, finds the names the other left.
    runtime.catch_up_together([listing])
    assert {positions()[part.name] for part in slot} == {head}


def test_the_runner_at_work_takes_the_names_left_while_it_held_the_slot():
    listing = Partition(registry.get("catalog.book_listing"), 0)
    runtime.catch_up_together(registry.slot("projections", 0))  # first runs: the checkpoints
    take_members(cache, runtime.SLOT_PASS_KEY.format(queue="projections", index=0))
    projector = BlockingProjector()
    with registered(projector):
        add_book(title="Kindred")
        head = runtime.head_position()

        # Given a runner at work on slot 0's backlog, in the middle of a batch
        at_work = start_busy_runner(
            projector,
            partial(runtime._catch_up_slot_behind, "projections", 0, [Partition(projector, 0)]),
        )
        try:
            # When another runner, behind on the listing, finds the slot taken
            runtime._catch_up_slot_behind("projections", 0, [listing])
            assert positions()["catalog.book_listing"] < head  # it left the listing to it
        finally:
            projector.release.set()
            at_work.join(10)

    # Then the runner at work caught the listing up after letting go of the slot
    assert positions()["catalog.book_listing"] == head
    assert projector.applied == ["Kindred"]


class AuthorsByName(Projector):
    """Two partitions, by the author's name, of an event type no other projector reads."""

    name = "test.authors_by_name"
    handles = frozenset({"AuthorAdded"})
    partitions = 2
    partition_by = "name"

    def __init__(self) -> None:
        self.applied: list[str] = []

    def apply(self, event):
        name = event.payload["name"]
        transaction.on_commit(lambda: self.applied.append(name), using="read")


def test_a_slot_held_back_by_an_open_append_is_woken_again():
    """Slot 1's event comes after a position an open transaction has taken, whose events go
    to partition 0 only. Its commit wakes slot 0 alone (dispatch.wake), which leaves partition
    1's event to slot 1; so slot 1's wake-up, held back at the gap, queues another of itself
    rather than leave the event to the sweep (bench-cost saw one partition of the order
    history wait 3.2 s for it)."""
    projector = AuthorsByName()
    names = [f"Author {i}" for i in range(20)]
    early = next(n for n in names if key_partition(n, 2) == 0)
    late = next(n for n in names if key_partition(n, 2) == 1)
    slot_1 = wake_pending_key("projections", 1)
    with registered(projector):
        first_runs()
        appended, commit = threading.Event(), threading.Event()

        def open_append() -> None:
            try:
                with transaction.atomic():
                    add_author(name=early)
                    appended.set()
                    commit.wait(10)
            finally:
                connections.close_all()

        writer = threading.Thread(target=open_append)
        writer.start()
        try:
            assert appended.wait(10)
            add_author(name=late)  # a later position, committed first: it wakes slot 1
            assert projector.name in take_members(cache, slot_1)  # ... whose task starts
            runtime.catch_up_together(registry.slot("projections", 1))
            assert projector.applied == []  # held back at the open append's position
        finally:
            commit.set()
            writer.join(10)
        runtime.catch_up_together(registry.slot("projections", 0))  # the open append's wake-up
        assert projector.applied == [early]

        # Slot 1 was woken again: its next task applies the event.
        woken = take_members(cache, slot_1)
        assert projector.name in woken
        tasks.project_slot("projections", 1, sorted(woken))
        assert sorted(projector.applied) == sorted([early, late])
        assert positions()[Partition(projector, 1).name] == runtime.head_position()


def test_a_slot_that_asked_a_held_sibling_for_another_pass_is_woken_again():
    """Slot 1's batch finds partition 0's checkpoint held by another runner and asks it for
    another pass. A runner that looked for such a request just before it was made ends
    without seeing it, so slot 1 is woken again, and its next batch moves partition 0 along
    (bench-cost's lag runs saw the order history's checkpoint wait for the sweep, 3.4 s)."""
    projector = AuthorsByName()
    names = [f"Author {i}" for i in range(20)]
    late = next(n for n in names if key_partition(n, 2) == 1)
    slot_1 = wake_pending_key("projections", 1)
    held = Partition(projector, 0).name
    with registered(projector):
        first_runs()
        add_author(name=late)
        head = runtime.head_position()
        assert projector.name in take_members(cache, slot_1)  # slot 1's task starts
        with another_session("read") as other:  # the runner at work on partition 0
            other.execute(
                "SELECT 1 FROM cqrs_projectorcheckpoint WHERE name = %s FOR UPDATE", [held]
            )
            runtime.catch_up_together(registry.slot("projections", 1))
            other.rollback()  # it ends, without looking for the request
        assert projector.applied == [late]
        assert positions()[held] < head

        woken = take_members(cache, slot_1)
        assert projector.name in woken
        tasks.project_slot("projections", 1, sorted(woken))
        assert positions()[held] == head


@pytest.mark.parametrize("kind", [PartitionedAuthors, FailingOnceAuthors], ids=["commits", "fails"])
def test_a_pass_asked_of_a_partition_a_siblings_batch_held_is_taken_by_that_batchs_task(kind):
    """Slot 0's batch holds partition 1's checkpoint as a sibling, and leaves partition 1's
    own events to slot 1. Slot 1's runner, finding the checkpoint held, asks for another pass
    and returns. Slot 0's task takes that pass once its batch has committed, or has failed
    and rolled back: nothing else would before the next command or the sweep (bench-cost's
    lag run saw the order history's last orders wait 2.2 s)."""
    projector = kind()
    with registered(projector):
        first_runs()
        authors = authors_in_both_partitions()
        head = runtime.head_position()

        slot_0 = start_busy_runner(
            projector, partial(runtime.catch_up_together, registry.slot("projections", 0))
        )
        try:
            runtime.catch_up_together(registry.slot("projections", 1))
            assert positions()[Partition(projector, 1).name] < head  # it found it held
        finally:
            projector.release.set()
            slot_0.join(10)

        assert getattr(projector, "failed", False) == (kind is FailingOnceAuthors)
        assert sorted(projector.applied) == sorted(a.name for a in authors)
        assert {positions()[part.name] for part in projector.partition_list()} == {head}
