import contextlib
import threading
import time
import uuid
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, connections, transaction

from apps.contracts.catalog import AuthorAdded
from apps.cqrs.commands import command
from apps.cqrs.context import scope
from apps.cqrs.log import RecordError, record
from apps.cqrs.models import AppendOnlyError, DomainEvent, load_events
from apps.cqrs.signals import event_recorded
from apps.write.catalog import services
from apps.write.catalog.models import Author, Book, BookAuthor
from tests.factories import StaffFactory, add_author, add_book


@pytest.mark.django_db(transaction=True)
def test_a_command_that_fails_after_writing_leaves_no_rows_and_no_events():
    # Given a receiver that fails after record() has inserted the command's event
    def explode(**kwargs):
        raise RuntimeError("failure after the event was written")

    author = add_author()
    events_before = DomainEvent.objects.count()
    event_recorded.connect(explode, dispatch_uid="test-explode")
    try:
        # When a command runs into it
        with pytest.raises(RuntimeError, match="after the event was written"):
            add_book(title="Never Sold", authors=[author])
    finally:
        event_recorded.disconnect(dispatch_uid="test-explode")

    # Then neither the book, its author links, nor its event exist
    assert not Book.objects.filter(title="Never Sold").exists()
    assert BookAuthor.objects.count() == 0
    assert DomainEvent.objects.count() == events_before


@pytest.mark.django_db
def test_events_carry_command_actor_correlation_and_aggregate_versions():
    staff = StaffFactory()
    correlation_id = uuid.uuid4()
    with scope(correlation_id=correlation_id) as request_scope:
        book = add_book(actor=staff, price="10.00")
        services.book_change_price(actor=staff, book_id=book.pk, price=Decimal("11.00"))
        services.book_change_price(actor=None, book_id=book.pk, price=Decimal("12.00"))

    events = list(DomainEvent.objects.filter(aggregate_type="book", aggregate_id=str(book.pk)))
    assert [(e.event_type, e.aggregate_version) for e in events] == [
        ("BookAdded", 1),
        ("PriceChanged", 2),
        ("PriceChanged", 3),
    ]
    assert {e.correlation_id for e in events} == {correlation_id}
    assert [e.command for e in events] == [
        "catalog.book_add",
        "catalog.book_change_price",
        "catalog.book_change_price",
    ]
    assert [(e.actor_id, e.actor) for e in events] == [
        (staff.pk, staff.username),
        (staff.pk, staff.username),
        (None, "system"),
    ]
    assert events[1].payload == {"book_id": book.pk, "old_price": "10.00", "new_price": "11.00"}
    assert request_scope.last_position == events[-1].position


@pytest.mark.django_db
def test_record_refuses_to_run_outside_a_command():
    with pytest.raises(RecordError, match="command service"):
        record(AuthorAdded(author_id=1, name="Nobody"))
    assert DomainEvent.objects.count() == 0


@pytest.mark.django_db
def test_the_event_log_cannot_be_changed_or_emptied():
    add_author(name="Ursula K. Le Guin")
    event = DomainEvent.objects.get()

    with pytest.raises(AppendOnlyError):
        DomainEvent.objects.update(actor="someone else")
    with pytest.raises(AppendOnlyError):
        DomainEvent.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    # Not even raw SQL: the database refuses too.
    for sql in ["UPDATE cqrs_domainevent SET actor = 'x'", "DELETE FROM cqrs_domainevent"]:
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql)

    assert DomainEvent.objects.get().actor == "system"
    assert Author.objects.count() == 1


@pytest.mark.django_db(transaction=True, databases=["default", "read"])
def test_a_command_whose_foreign_key_waits_on_a_locked_row_commits_without_deadlock():
    # Given a writer that holds a book row locked and will then record an event
    from tests.factories import UserFactory, place_order, stocked_book

    book = stocked_book(on_hand=5)
    customer = UserFactory()
    locked, errors = threading.Event(), []

    def writer_holding_the_book() -> None:
        try:
            with transaction.atomic():
                Book.objects.select_for_update().get(pk=book.pk)  # FOR UPDATE, the strongest
                locked.set()
                time.sleep(0.5)  # the order below gets as far as it can meanwhile
                add_author(name="Written while the book is locked")
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=writer_holding_the_book)
    thread.start()
    locked.wait()
    # When an order for that book (an order line refers to it) commits meanwhile
    try:
        place_order(customer, (book, 1))
    except BaseException as exc:
        errors.append(exc)
    thread.join()

    # Then the order waited for the row: no deadlock, both committed
    assert errors == []
    assert Author.objects.filter(name="Written while the book is locked").exists()
    assert DomainEvent.objects.filter(event_type="OrderPlaced").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_failed_inner_command_cannot_be_caught_and_committed_by_the_outer_one():
    # Given an outer command that catches the failure of a command it calls, after that inner
    # command has recorded an event
    from apps.cqrs.commands import command

    @command("test.inner")
    def inner(*, actor=None):
        record(AuthorAdded(author_id=999_999, name="Rolled Back"))
        raise ValueError("inner failed")

    @command("test.outer")
    def outer(*, actor=None):
        with contextlib.suppress(ValueError):
            inner(actor=actor)
        return Author.objects.create(name="Outer")

    events_before = DomainEvent.objects.count()
    # When it runs, it cannot go on in the broken transaction
    with pytest.raises(transaction.TransactionManagementError):
        outer()

    # Then neither the inner command's event nor the outer command's row was committed
    assert DomainEvent.objects.count() == events_before
    assert not Author.objects.filter(name="Outer").exists()


@command("test.after")
def record_after(*, actor=None, name: str) -> None:
    record(AuthorAdded(author_id=2, name=name))


@command("test.first")
def record_then_hook(*, actor=None) -> None:
    record(AuthorAdded(author_id=1, name="First"))

    def hook():
        # As a wake-up does in the embedded mode: a subscriber runs right after the commit, in
        # a transaction of its own, and its commands record events.
        with transaction.atomic():
            record_after(name="Caused")

    transaction.on_commit(hook)


@pytest.mark.django_db(transaction=True)
def test_a_command_run_once_another_has_committed_appends_its_own_events():
    with scope():
        record_then_hook()
    recorded = DomainEvent.objects.filter(event_type="AuthorAdded").order_by("position")
    assert [(e.command, e.payload["name"]) for e in recorded] == [
        ("test.first", "First"),
        ("test.after", "Caused"),
    ]
    assert recorded[0].correlation_id == recorded[1].correlation_id


@pytest.mark.django_db
def test_events_loaded_for_projectors_equal_those_the_orm_loads():
    # load_events reads with psycopg's own loaders on PostgreSQL: every field must come out
    # with the value and type Django's converters give (a payload left as text, a naive or
    # shifted timestamp, would differ here)
    staff = StaffFactory()
    with scope(correlation_id=uuid.uuid4()):
        author = add_author(name="Zoë Ōtsuka")
        book = add_book(actor=staff, title="Ünïcode & “quotes”", price="10.50", authors=[author])
        services.book_change_price(actor=None, book_id=book.pk, price=Decimal("11.25"))

    events = DomainEvent.objects.order_by("position")
    loaded = load_events(events, 10)
    expected = list(events)
    assert [e.position for e in loaded] == [e.position for e in expected]
    names = [field.attname for field in DomainEvent._meta.concrete_fields]
    for got, want in zip(loaded, expected, strict=True):
        for name in names:
            value, wanted = getattr(got, name), getattr(want, name)
            assert (name, value, type(value)) == (name, wanted, type(wanted))
        assert got.data == want.data
    assert loaded[0].recorded_at.utcoffset() is not None
    assert load_events(events, 2) == expected[:2]
    assert load_events(events.filter(event_type__in=[]), 10) == []
