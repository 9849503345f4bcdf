"""An event the projectors cannot apply: they stop at it and retry with back-off, staff see the
error, the other projectors go on, and a staff skip with a reason, recorded in the log, lets
them continue. A replay skips the same event."""

import dataclasses

import pytest
from django.contrib.auth import get_user_model

from apps.cqrs.commands import command
from apps.cqrs.events import Event
from apps.cqrs.log import record
from apps.cqrs.models import DomainEvent, ProjectorCheckpoint
from apps.read.catalog.models import BookListing
from apps.read.orders.models import OrderSummary
from tests.conftest import wait_for, wait_until_caught_up
from tests.factories import UserFactory, add_book, place_order, stocked_book
from tests.faults.conftest import differences_from_a_fresh_rebuild

pytestmark = [
    pytest.mark.faults,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True, databases=["default", "read"]),
]
STOPPED = ["catalog.book_listing", "reports.figures"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class MalformedBookAdded(Event, abstract=True):
    """A BookAdded without the fields its contract has, as a faulty release might write (not a
    contract itself: `abstract` keeps it out of the register of event types)."""

    event_type = "BookAdded"
    aggregate_type = "book"
    aggregate_id_field = "book_id"
    book_id: int


@command("test.faulty_release")
def write_malformed_event(*, actor=None) -> None:
    record(MalformedBookAdded(book_id=987_654))


def checkpoints() -> dict[str, ProjectorCheckpoint]:
    return {cp.name: cp for cp in ProjectorCheckpoint.objects.all()}


def test_a_poison_event_stops_only_its_projectors_until_staff_skip_it(
    celery_worker, client, report
):
    staff = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw")
    client.force_login(staff)
    before = add_book(title="Before the poison")
    write_malformed_event()
    poison = DomainEvent.objects.get(aggregate_id="987654")

    # The projectors that read BookAdded stop at it and retry with back-off
    def stopped():
        """both projectors have failed on the poison event at least twice"""
        cps = checkpoints()
        return all(
            cps.get(name) and cps[name].failed_position == poison.position
            and cps[name].attempts >= 2 for name in STOPPED
        )  # fmt: skip

    wait_for(stopped, timeout=30, interval=0.1)
    cps = checkpoints()
    # The contract refuses the payload and names what it lacks
    assert "MalformedEvent: BookAdded v1" in cps["catalog.book_listing"].last_error
    assert "title\n  Field required" in cps["catalog.book_listing"].last_error
    assert BookListing.objects.filter(book_id=before.pk).exists()
    page = client.get("/admin/cqrs/projections/").content.decode()
    assert f"Why skip event #{poison.position}?" in page
    assert "MalformedEvent" in page

    # ... while the other projectors go on
    order = place_order(UserFactory(), (stocked_book(on_hand=2), 1))
    wait_for(lambda: OrderSummary.objects.filter(order_id=order.pk).exists(), timeout=15)
    after = add_book(title="After the poison")
    assert not BookListing.objects.filter(book_id=after.pk).exists()

    # A skip needs a reason, and only the event a projector is stopped at can be skipped
    refused = client.post(
        "/admin/cqrs/projections/catalog.book_listing/skip/",
        {"position": poison.position, "reason": "bad"},
        follow=True,
    )
    assert "Say why the event is skipped" in refused.content.decode()
    wrong = client.post(
        "/admin/cqrs/projections/catalog.book_listing/skip/",
        {"position": before.pk, "reason": "Malformed BookAdded from release 1.2.3"},
        follow=True,
    )
    assert "is not stopped at event" in wrong.content.decode()
    assert not DomainEvent.objects.filter(event_type="ProjectionEventSkipped").exists()

    # Staff skip it with a reason: the skip is in the log, and the projectors continue
    for name in STOPPED:
        done = client.post(
            f"/admin/cqrs/projections/{name}/skip/",
            {"position": poison.position, "reason": "Malformed BookAdded from release 1.2.3"},
            follow=True,
        )
        assert f"skips event #{poison.position}" in done.content.decode()
    wait_for(lambda: BookListing.objects.filter(book_id=after.pk).exists(), timeout=15)
    wait_until_caught_up()
    skips = DomainEvent.objects.filter(event_type="ProjectionEventSkipped")
    assert sorted(skips.values_list("aggregate_id", flat=True)) == sorted(STOPPED)
    skip = skips.first()
    assert skip.actor == "ops"
    assert skip.payload["reason"] == "Malformed BookAdded from release 1.2.3"
    assert skip.payload["skipped_event_id"] == str(poison.event_id)
    assert all(not cp.last_error for cp in checkpoints().values())

    # A rebuild skips it as well, and ends with the same tables
    celery_worker.terminate()
    celery_worker.wait()
    differences = differences_from_a_fresh_rebuild()
    assert differences == {}
    report(
        "poison event",
        projectors_stopped=len(STOPPED),
        retries_before_skip=min(cps[name].attempts for name in STOPPED),
        skips_in_log=skips.count(),
        rows_differing_from_rebuild=sum(differences.values()),
    )
