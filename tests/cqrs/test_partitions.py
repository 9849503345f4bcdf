"""Partitioned projectors: each partition has its own checkpoint and runner, the events of one key
stay in one partition and in order, read-your-writes waits for every partition, and the count can
be changed without a rebuild. Failures of projectors that park by key park one aggregate."""

import io
import re
import threading
import time
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connections

from apps.contracts.orders import OrderShipped
from apps.cqrs import runtime
from apps.cqrs.commands import command
from apps.cqrs.consistency import note_checkpoint, read_position, wait_for_position
from apps.cqrs.log import record
from apps.cqrs.models import DomainEvent, ProjectorCheckpoint
from apps.cqrs.projectors import key_partition, registry
from apps.read.orders.models import CustomerTotals, OrderSummary
from apps.write.orders import services as orders
from tests.factories import APPROVE, UserFactory, place_order, stocked_book
from tests.projectors import registered

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "read"])
HISTORY = "orders.history"


def history_rows() -> tuple[list, list]:
    return (
        list(OrderSummary.objects.order_by("order_id").values_list()),
        list(CustomerTotals.objects.order_by("customer_id").values_list()),
    )


def shop(customers: int = 8, orders_each: int = 3) -> list:
    book = stocked_book(on_hand=500)
    placed = []
    for _ in range(customers):
        customer = UserFactory()
        for i in range(orders_each):
            order = place_order(customer, (book, 1 + i % 2))
            if i % 2 == 0:
                orders.order_pay(actor=customer, order_id=order.pk, card_number=APPROVE)
            placed.append(order)
    return placed


def test_each_event_is_in_exactly_one_partition_and_sql_agrees_with_python():
    shop(customers=10, orders_each=2)
    history = registry.get(HISTORY)
    events = DomainEvent.objects.filter(event_type__in=history.handles)
    seen: dict[int, int] = {}
    for part in history.partition_list():
        for position in part.events(events).values_list("position", flat=True):
            assert position not in seen
            seen[position] = part.index
    assert sorted(seen) == sorted(events.values_list("position", flat=True))
    for event in events:
        # By customer: a customer's every order is in the partition python computes
        assert seen[event.position] == history.partition_of(event).index
        assert seen[event.position] == key_partition(str(event.payload["customer_id"]), 2)
    assert set(seen.values()) == {0, 1}  # both partitions have work


def test_two_partitions_projected_at_once_equal_a_single_runner_replay():
    # Given orders of many customers, and one runner per partition working while they come in
    history = registry.get(HISTORY)
    stop = threading.Event()
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            while not stop.is_set():
                runtime.catch_up(history, partition=index, batch_size=3)
            runtime.catch_up(history, partition=index)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    runners = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for runner in runners:
        runner.start()
    shop(customers=8, orders_each=3)
    stop.set()
    for runner in runners:
        runner.join()
    assert not errors, errors
    live = history_rows()
    assert len(live[0]) == 24

    # Then a replay by one runner, partition after partition, gives the same rows
    runtime.rebuild(history)
    assert history_rows() == live
    checkpoints = ProjectorCheckpoint.objects.filter(name__startswith=f"{HISTORY}[")
    assert sorted(checkpoints.values_list("name", flat=True)) == [
        f"{HISTORY}[0/2]",
        f"{HISTORY}[1/2]",
    ]


def test_a_position_is_passed_only_when_every_partition_has_passed_it():
    shop(customers=4, orders_each=1)
    history = registry.get(HISTORY)
    runtime.catch_up(history)
    head = runtime.head_position()
    assert read_position([history]) == head
    # When one partition is behind, the position is not passed, whichever partition it is in
    ProjectorCheckpoint.objects.filter(name=f"{HISTORY}[1/2]").update(position=head - 1)
    note_checkpoint(f"{HISTORY}[1/2]", head - 1)
    assert read_position([history]) == head - 1
    waited = wait_for_position(projector_names=[HISTORY], min_position=head, timeout=0.2)
    assert not waited.satisfied
    runtime.catch_up(history, partition=1)
    assert wait_for_position(projector_names=[HISTORY], min_position=head, timeout=0).satisfied


def test_the_partition_count_changes_without_a_rebuild(monkeypatch):
    # Given a history projected by 2 partitions, one of them behind the other
    placed = shop(customers=6, orders_each=2)
    history = registry.get(HISTORY)
    runtime.catch_up(history)
    expected = history_rows()
    ProjectorCheckpoint.objects.filter(name=f"{HISTORY}[0/2]").update(position=0)
    OrderSummary.objects.filter(
        order_id__in=[o.pk for o in placed if history.partition_of(first_event(o)).index == 0]
    ).delete()
    CustomerTotals.objects.filter(
        customer_id__in=[o.customer_id for o in placed if key_partition(str(o.customer_id), 2) == 0]
    ).delete()

    # When the code now declares 3 partitions, the runtime refuses to start them from zero
    monkeypatch.setattr(type(history), "partitions", 3)
    with pytest.raises(runtime.PartitionsChanged, match="repartition_projector"):
        runtime.catch_up(history)
    # ... and staff see why, on the checkpoints it has
    rows = runtime.status([history])
    assert [r.name for r in rows] == [f"{HISTORY}[0/2]", f"{HISTORY}[1/2]"]
    assert all("repartition_projector" in r.last_error for r in rows)

    # Then the command moves the checkpoints: the old partitions are caught up first
    call_command("repartition_projector", HISTORY, verbosity=0)
    names = sorted(ProjectorCheckpoint.objects.filter(name__startswith=HISTORY).values_list("name"))
    assert names == [(f"{HISTORY}[{i}/3]",) for i in range(3)]
    assert history_rows() == expected
    # ... and new events go on, each applied once
    customer = UserFactory()
    place_order(customer, (stocked_book(on_hand=3), 1))
    runtime.catch_up(history)
    assert CustomerTotals.objects.get(customer_id=customer.pk).orders == 1
    runtime.rebuild(history)
    assert len(history_rows()[0]) == len(expected[0]) + 1


def first_event(order) -> DomainEvent:
    return DomainEvent.objects.filter(aggregate_type="order", aggregate_id=str(order.pk)).first()


def test_rebuild_with_jobs_replays_the_partitions_in_processes():
    shop(customers=6, orders_each=2)
    history = registry.get(HISTORY)
    runtime.catch_up(history)
    live = history_rows()
    said = io.StringIO()
    call_command("rebuild_read_models", projectors=[HISTORY], jobs=2, stdout=said)
    assert history_rows() == live
    # Where the time went: each partition's replay, the build's readying, the switch
    assert re.fullmatch(
        rf"{re.escape(HISTORY)} v\d+: built to position {runtime.head_position()}; it serves "
        r"reads \(replayed in \d+\.\d\d \+ \d+\.\d\d s, readied in \d+\.\d\d s, switched in "
        r"\d+\.\d\d s\)\n",
        said.getvalue(),
    ), said.getvalue()
    positions = ProjectorCheckpoint.objects.filter(name__startswith=HISTORY).values_list(
        "position", flat=True
    )
    assert set(positions) == {runtime.head_position()}


def test_unknown_partitions_command_input_is_refused():
    with pytest.raises(CommandError, match="No projector named"):
        call_command("repartition_projector", "nope")


# Parking by key ---------------------------------------------------------------------------


@command("test.stray_shipment")
def write_stray_shipment(*, actor=None, order_id: int, customer_id: int) -> None:
    # An OrderShipped for an order the history has never seen, as a faulty release might.
    record(OrderShipped(order_id=order_id, customer_id=customer_id))


def test_a_poison_event_parks_its_order_only_and_staff_retry_or_skip_it(client, report):
    history = registry.get(HISTORY)
    customer = UserFactory()
    book = stocked_book(on_hand=100)
    before = place_order(customer, (book, 1))
    runtime.catch_up(history)
    # Given an event the history cannot apply (no such order yet), then that order's later
    # events, and other orders of the same customer and of others
    stray_id = before.pk + 10_000
    write_stray_shipment(order_id=stray_id, customer_id=customer.pk)
    poison = DomainEvent.objects.get(aggregate_type="order", aggregate_id=str(stray_id))
    write_stray_shipment(order_id=stray_id, customer_id=customer.pk)
    committed_at = {}
    others = []
    for buyer in (customer, UserFactory(), UserFactory()):
        order = place_order(buyer, (book, 1))
        committed_at[order.pk] = time.monotonic()
        others.append(order)

    # When the partition catches up, the stray order is parked and every other order goes on
    result = runtime.catch_up(history)
    assert result.failed_position is None
    lags = [time.monotonic() - committed_at[o.pk] for o in others]
    assert set(OrderSummary.objects.values_list("order_id", flat=True)) == {
        before.pk,
        *(o.pk for o in others),
    }
    part = history.partition_of(poison)
    checkpoint = ProjectorCheckpoint.objects.get(name=part.name)
    assert list(checkpoint.parked) == [f"order:{stray_id}"]
    assert checkpoint.parked[f"order:{stray_id}"]["position"] == poison.position
    assert "DoesNotExist" in checkpoint.parked[f"order:{stray_id}"]["error"]
    assert checkpoint.position == runtime.head_position() or checkpoint.position > poison.position
    assert not checkpoint.last_error

    # Staff see it; a retry while the cause is still there keeps it parked
    staff = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw")
    client.force_login(staff)
    page = client.get("/admin/cqrs/projections/").content.decode()
    assert f"order:{stray_id}" in page
    assert f"Why skip event #{poison.position}?" in page
    retried = client.post(
        f"/admin/cqrs/projections/{HISTORY}/retry-key/", {"key": f"order:{stray_id}"}, follow=True
    )
    assert "failed again" in retried.content.decode()
    assert (
        ProjectorCheckpoint.objects.get(name=part.name).parked[f"order:{stray_id}"]["attempts"] == 2
    )

    # A staff skip with a reason is an event in the log; the key's next event fails as well,
    # so it stays parked there, and a second skip clears it
    for event in DomainEvent.objects.filter(aggregate_id=str(stray_id)).order_by("position"):
        done = client.post(
            f"/admin/cqrs/projections/{HISTORY}/skip/",
            {"position": event.position, "reason": "Stray shipment from release 1.2.3"},
            follow=True,
        )
        assert f"skips event #{event.position}" in done.content.decode()
    assert ProjectorCheckpoint.objects.get(name=part.name).parked == {}
    skips = DomainEvent.objects.filter(event_type="ProjectionEventSkipped")
    assert skips.count() == 2
    assert {s.actor for s in skips} == {"ops"}
    # A rebuild honours the skips and gives the same rows, with nothing parked
    live = history_rows()
    runtime.rebuild(history)
    assert history_rows() == live
    assert all(cp.parked == {} for cp in ProjectorCheckpoint.objects.all())
    report(
        "parked key",
        parked_keys=1,
        other_orders_projected=len(others),
        other_orders_max_lag_ms=round(max(lags) * 1000, 1),
        skips_in_log=skips.count(),
    )


class FlakyListing:
    broken: set[str] = set()


@pytest.fixture
def flaky_projector():
    from apps.cqrs.projectors import Projector

    class Flaky(Projector):
        """Fails on the books in `FlakyListing.broken`, as a projector whose database refuses
        one row until staff fix it."""

        name = "test.flaky"
        handles = frozenset({"BookAdded", "PriceChanged"})
        parks_by_key = True

        def __init__(self) -> None:
            self.applied: list[int] = []

        def apply(self, event):
            if self.key_of(event) in FlakyListing.broken:
                raise RuntimeError(f"cannot write {self.key_of(event)}")
            self.applied.append(event.position)

    with registered(Flaky()) as projector:
        yield projector
    FlakyListing.broken = set()


def test_a_retry_after_the_cause_is_fixed_applies_the_parked_events_in_order(flaky_projector):
    from apps.write.catalog import services as catalog

    books = [stocked_book(on_hand=0, title=f"Flaky {i}") for i in range(3)]
    FlakyListing.broken = {f"book:{books[1].pk}"}
    for book in books:
        catalog.book_change_price(actor=None, book_id=book.pk, price=Decimal("9.99"))
    runtime.catch_up(flaky_projector)
    parked = ProjectorCheckpoint.objects.get(name="test.flaky").parked
    assert list(parked) == [f"book:{books[1].pk}"]
    key_events = list(
        DomainEvent.objects.filter(aggregate_type="book", aggregate_id=str(books[1].pk))
        .filter(event_type__in=flaky_projector.handles)
        .values_list("position", flat=True)
    )
    assert not set(key_events) & set(flaky_projector.applied)
    # When the cause is fixed, a retry applies the key's events, in order, and unparks it
    FlakyListing.broken = set()
    assert runtime.retry_parked(flaky_projector, key=f"book:{books[1].pk}") is None
    assert flaky_projector.applied[-len(key_events) :] == key_events
    assert ProjectorCheckpoint.objects.get(name="test.flaky").parked == {}
    with pytest.raises(runtime.NotParked):
        runtime.retry_parked(flaky_projector, key=f"book:{books[1].pk}")
