"""The published language: typed events out of the log, upcasting of old shapes, and the start-up
checks that keep projectors and contracts in step."""

import uuid
from datetime import date
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.utils import timezone

from apps.audit.history import history
from apps.contracts.catalog import BookAdded, Credit
from apps.contracts.orders import OrderCancelled, OrderPlaced, PlacedLine, SoldLine
from apps.cqrs import events, runtime
from apps.cqrs.checks import check_event_contracts
from apps.cqrs.events import MalformedEvent
from apps.cqrs.models import DomainEvent, ReadModelVersion, load_events
from apps.cqrs.projectors import Projector, registry
from apps.read.catalog.models import BookListing
from apps.read.reports.models import StockLevel
from apps.write.catalog import services as catalog
from apps.write.orders import services as orders
from tests.factories import UserFactory, new_isbn, place_order, stocked_book
from tests.projectors import registered

pytestmark = pytest.mark.django_db(databases=["default", "read"])


def store_v1_book_added(*, book_id: int, title: str, author: Credit) -> DomainEvent:
    """A BookAdded as the shop wrote it before books had a language, stored as it was."""
    return DomainEvent.objects.create(
        aggregate_type="book",
        aggregate_id=str(book_id),
        aggregate_version=1,
        event_type="BookAdded",
        schema_version=1,
        payload={
            "book_id": book_id,
            "title": title,
            "subtitle": "",
            "isbn": new_isbn(),
            "description": "",
            "format": "paperback",
            "published_on": "1969-03-01",
            "price": "9.50",
            "authors": [{"id": author.id, "name": author.name}],
        },
        command="catalog.book_add",
        actor="system",
        correlation_id=uuid.uuid4(),
        recorded_at=timezone.now(),
    )


def listings() -> dict[int, tuple]:
    return {
        row.book_id: (row.title, row.language, row.price, row.published_on, row.authors)
        for row in BookListing.objects.all()
    }


def test_a_mixed_log_of_old_and_new_shapes_projects_and_replays_to_the_same_read_models():
    author = catalog.author_add(actor=None, name="Ursula K. Le Guin")
    credit = Credit(id=author.pk, name=author.name)
    old = store_v1_book_added(book_id=900_001, title="The Left Hand of Darkness", author=credit)
    new = catalog.book_add(
        actor=None,
        title="Les Dépossédés",
        isbn=new_isbn(),
        author_ids=[author.pk],
        price=Decimal("12.00"),
        language="fr",
    )
    listing, reports = registry.get("catalog.book_listing"), registry.get("reports.figures")

    # Live projection reads the old event in the new shape
    runtime.catch_up(listing)
    runtime.catch_up(reports)
    live = listings()
    assert live[900_001] == (
        "The Left Hand of Darkness",
        "en",
        Decimal("9.50"),
        date(1969, 3, 1),
        [{"id": author.pk, "name": author.name}],
    )
    assert live[new.pk][1] == "fr"
    assert StockLevel.objects.get(book_id=900_001).title == "The Left Hand of Darkness"

    # A replay over the same mixed log gives the same rows
    runtime.rebuild(listing)
    assert listings() == live

    # The log keeps what was written; readers of the history see the current shape
    stored = DomainEvent.objects.get(position=old.position)
    assert stored.schema_version == 1
    assert "language" not in stored.payload
    assert stored.data == BookAdded(
        book_id=900_001,
        title="The Left Hand of Darkness",
        subtitle="",
        isbn=stored.payload["isbn"],
        description="",
        format="paperback",
        language="en",
        published_on=date(1969, 3, 1),
        price=Decimal("9.50"),
        authors=[credit],
    )
    [(_, state)] = history(aggregate_type="book", aggregate_id="900001")
    assert state["language"] == "en"


def test_consumers_receive_typed_events_with_decimals_and_aware_datetimes():
    customer = UserFactory()
    book = stocked_book(on_hand=5)
    order = place_order(customer, (book, 2))
    orders.order_cancel(actor=customer, order_id=order.pk, reason="Changed my mind")
    rows = DomainEvent.objects.filter(aggregate_type="order", aggregate_id=str(order.pk))
    placed, cancelled = (row.data for row in rows.order_by("aggregate_version"))

    assert isinstance(placed, OrderPlaced)
    assert isinstance(cancelled, OrderCancelled)
    assert placed.total == Decimal("2") * book.price
    assert isinstance(placed.total, Decimal)
    [line] = placed.lines
    assert isinstance(line, PlacedLine)
    assert line.unit_price == book.price
    assert isinstance(line.unit_price, Decimal)
    assert line.quantity == 2
    assert cancelled.lines == [SoldLine(book_id=book.pk, title=book.title, quantity=2)]
    assert cancelled.placed_at.utcoffset() is not None
    assert cancelled.placed_at == order.placed_at


def test_a_payload_that_does_not_fit_its_contract_is_refused_with_the_field_named():
    row = DomainEvent(event_type="OrderPaid", schema_version=1, payload={"order_id": 1})
    with pytest.raises(MalformedEvent, match="amount"):
        _ = row.data
    # ... also as a projector gets it, validated from the stored JSON text
    row = DomainEvent.objects.create(
        aggregate_type="order", aggregate_id="1", aggregate_version=1, event_type="OrderPaid",
        payload={"order_id": 1}, command="test", actor="test", correlation_id=uuid.uuid4(),
        recorded_at=timezone.now(),
    )  # fmt: skip
    [loaded] = load_events(DomainEvent.objects.filter(position=row.position), 1)
    with pytest.raises(MalformedEvent, match="amount"):
        _ = loaded.data


class Typo(Projector):
    name = "test.typo"
    handles = frozenset({"BookAdded", "BookAded"})

    def apply(self, event: DomainEvent) -> None:
        pass


def test_a_projector_that_handles_an_unknown_event_type_stops_start_up():
    assert check_event_contracts() == []
    with registered(Typo()):
        [error] = check_event_contracts()
        assert error.id == "cqrs.E001"
        assert "'BookAded'" in error.msg
        with pytest.raises(SystemCheckError, match="BookAded"):
            call_command("check")


def test_an_old_version_without_an_upcaster_stops_start_up(monkeypatch):
    monkeypatch.delitem(events._upcasters, ("BookAdded", 1))
    [error] = check_event_contracts()
    assert error.id == "cqrs.E002"
    assert "BookAdded v1 -> v2" in error.msg
    # ... and a rebuild, which runs these checks alone, before it replays anything
    with pytest.raises(SystemCheckError, match="BookAdded v1 -> v2"):
        call_command("rebuild_read_models", skip_checks=False, verbosity=0)
    assert not ReadModelVersion.objects.filter(building__isnull=False).exists()


def test_handles_declared_with_classes_are_kept_as_names():
    assert "BookAdded" in registry.get("catalog.book_listing").handles
    assert all(isinstance(name, str) for p in registry.all() for name in p.handles)
