"""The benchmarks' bulk catalog must be what the command services would have made."""

from datetime import date
from decimal import Decimal

import pytest
from django.core.management import call_command

from apps.cqrs import runtime
from apps.cqrs.models import DomainEvent
from apps.cqrs.projectors import registry
from apps.read.catalog.models import BookListing
from apps.write.catalog import services as catalog
from apps.write.catalog.models import Book
from apps.write.inventory import services as inventory
from apps.write.inventory.models import StockItem
from tests.factories import new_isbn
from tests.test_audit import run_audit

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "read"])

ROW_FIELDS = ("aggregate_type", "aggregate_version", "event_type", "schema_version", "command")


def row_shape(event: DomainEvent) -> tuple:
    return (
        *(getattr(event, f) for f in ROW_FIELDS),
        event.actor,
        event.actor_id,
        event.causation_id,
    )


def events_of(book: Book) -> dict[str, DomainEvent]:
    events = DomainEvent.objects.filter(aggregate_type__in=["book", "stock"], aggregate_id=book.pk)
    return {e.event_type: e for e in events}


def test_bulk_seeded_rows_and_events_match_those_of_the_services():
    call_command("bulk_seed_catalog", books=60, authors=6, verbosity=0)
    bulk = Book.objects.order_by("pk").first()
    bulk_events = events_of(bulk)

    # The same book through the services
    author_ids = list(bulk.authors.values_list("pk", flat=True))
    stock = StockItem.objects.get(book=bulk).on_hand
    made = catalog.book_add(
        actor=None,
        title=bulk.title,
        isbn=new_isbn(),
        author_ids=author_ids,
        price=bulk.price,
        format=bulk.format,
        language=bulk.language,
        published_on=bulk.published_on,
        description=bulk.description,
    )
    if stock:
        inventory.stock_receive(actor=None, book_id=made.pk, quantity=stock)
    made_events = events_of(made)

    assert set(bulk_events) == set(made_events)
    for event_type, event in bulk_events.items():
        twin = made_events[event_type]
        assert row_shape(event) == row_shape(twin)
        differ = {"book_id", "isbn"}
        assert {k: v for k, v in event.payload.items() if k not in differ} == {
            k: v for k, v in twin.payload.items() if k not in differ
        }
    assert isinstance(bulk.price, Decimal)
    assert isinstance(bulk.published_on, date)


def test_projectors_build_the_same_read_models_from_the_bulk_log():
    call_command("bulk_seed_catalog", books=120, authors=10, verbosity=0)
    positions = list(DomainEvent.objects.order_by("position").values_list("position", flat=True))
    assert positions == sorted(set(positions))
    for projector in registry.all():
        runtime.catch_up(projector)

    assert BookListing.objects.count() == 120
    in_stock = StockItem.objects.filter(on_hand__gt=0).count()
    assert BookListing.objects.exclude(availability="out").count() == in_stock
    assert run_audit() == (0, "The read models agree with the write model.\n")


def test_bulk_seed_refuses_bad_counts():
    with pytest.raises(Exception, match="must be 1 or more"):
        call_command("bulk_seed_catalog", books=0, verbosity=0)
    assert not Book.objects.exists()
