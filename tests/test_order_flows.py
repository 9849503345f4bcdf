"""Process managers end to end, with a real worker running the side-effects queue."""

from contextlib import suppress
from datetime import timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction

from apps.cqrs import runtime
from apps.cqrs.models import DomainEvent, SubscriberCheckpoint
from apps.cqrs.projectors import registry
from apps.write.inventory import services as inventory
from apps.write.inventory.models import StockItem
from apps.write.orders import services
from apps.write.orders.emails import emails_recover
from apps.write.orders.models import Notification, Order
from apps.write.orders.subscribers import OrderEmails
from tests.conftest import wait_for
from tests.factories import DECLINE, UserFactory, place_order, stocked_book


@pytest.mark.worker
@pytest.mark.django_db(transaction=True, databases=["default", "read"])
def test_a_declined_payment_cancels_the_order_and_releases_its_stock(celery_worker):
    customer = UserFactory()
    book = stocked_book(on_hand=3)
    order = place_order(customer, (book, 2))
    assert StockItem.objects.get(pk=book.pk).on_hand == 1

    payment = services.order_pay(actor=customer, order_id=order.pk, card_number=DECLINE)
    assert payment.status == "declined"

    def cancelled():
        """the order is cancelled by the payment compensation"""
        return Order.objects.get(pk=order.pk).status == Order.Status.CANCELLED

    wait_for(cancelled, timeout=15)
    assert StockItem.objects.get(pk=book.pk).on_hand == 3
    cancel = DomainEvent.objects.get(event_type="OrderCancelled")
    declined = DomainEvent.objects.get(event_type="PaymentDeclined")
    # Traced back: same correlation as the payment, caused by the decline, done by the system
    assert cancel.causation_id == declined.event_id
    assert cancel.correlation_id == declined.correlation_id
    assert (cancel.actor, cancel.command) == ("system:payment-compensation", "orders.cancel")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True, databases=["default", "read"])
def test_stock_arriving_fills_backorders_first_come_first_served(celery_worker):
    book = stocked_book(on_hand=0, allow_backorder=True)
    first = place_order(UserFactory(), (book, 2))
    second = place_order(UserFactory(), (book, 2))

    inventory.stock_receive(actor=None, book_id=book.pk, quantity=3)

    def filled():
        """3 units went to the oldest backorders"""
        lines = {o.pk: o.lines.get().backordered for o in Order.objects.all()}
        return lines == {first.pk: 0, second.pk: 1}

    wait_for(filled, timeout=15)
    assert StockItem.objects.get(pk=book.pk).on_hand == 0
    fills = DomainEvent.objects.filter(event_type="BackorderFilled").order_by("position")
    assert [(e.payload["order_id"], e.payload["quantity"]) for e in fills] == [
        (first.pk, 2),
        (second.pk, 1),
    ]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True, databases=["default", "read"])
def test_order_emails_are_sent_by_the_worker(celery_worker):
    customer = UserFactory(email="reader@example.com")
    order = place_order(customer, (stocked_book(), 1))
    services.order_cancel(actor=customer, order_id=order.pk)

    def both_sent():
        """the placed and cancelled e-mails were sent"""
        sent = Notification.objects.filter(recipient="reader@example.com").exclude(sent_at=None)
        return sent.count() == 2

    wait_for(both_sent, timeout=15)
    subjects = set(Notification.objects.values_list("subject", flat=True))
    assert subjects == {f"We have your order {order.pk}", f"Order {order.pk} was cancelled"}


@pytest.mark.django_db
def test_a_repeated_event_sends_no_second_email(django_capture_on_commit_callbacks):
    customer = UserFactory(email="reader@example.com")
    place_order(customer, (stocked_book(), 1))
    placed = DomainEvent.objects.get(event_type="OrderPlaced")

    with django_capture_on_commit_callbacks(execute=True):
        OrderEmails().apply_batch([placed])
    with django_capture_on_commit_callbacks(execute=True):
        OrderEmails().apply_batch([placed])

    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["reader@example.com"]
    assert placed.payload["lines"][0]["title"] in mail.outbox[0].body
    assert mail.outbox[0].extra_headers["Message-ID"] == f"<{placed.event_id}@bookstore.example>"
    assert Notification.objects.get().sent_at is not None


@pytest.mark.django_db
def test_a_batch_of_orders_records_its_emails_in_three_statements_whatever_its_size(
    django_capture_on_commit_callbacks, django_assert_num_queries
):
    book = stocked_book(on_hand=20)
    readers = [UserFactory(email=f"reader{i}@example.com") for i in range(3)]
    silent = UserFactory(email="")  # no address: nothing to send
    for customer in [*readers, *readers, silent]:
        place_order(customer, (book, 1))
    placed = list(DomainEvent.objects.filter(event_type="OrderPlaced").order_by("position"))

    with django_capture_on_commit_callbacks() as sends, django_assert_num_queries(3):
        OrderEmails().apply_batch(placed)  # customers, already recorded, one insert
    with django_assert_num_queries(1):  # the mark, after the sends
        for send in sends:
            send()

    assert sorted(m.to[0] for m in mail.outbox) == sorted(2 * [r.email for r in readers])
    assert Notification.objects.filter(sent_at=None).count() == 0


@pytest.mark.django_db
def test_a_batch_with_an_event_that_fails_records_and_sends_nothing(
    django_capture_on_commit_callbacks,
):
    customer = UserFactory(email="reader@example.com")
    place_order(customer, (stocked_book(), 1))
    place_order(customer, (stocked_book(), 1))
    first, second = DomainEvent.objects.filter(event_type="OrderPlaced").order_by("position")
    second.payload["customer_id"] = 999_999  # no such customer

    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(LookupError),
        transaction.atomic(),
    ):
        OrderEmails().apply_batch([first, second])

    assert mail.outbox == []
    assert not Notification.objects.exists()


class Rollback(Exception):
    pass


@pytest.mark.django_db
def test_no_email_leaves_inside_a_transaction_that_rolls_back(django_capture_on_commit_callbacks):
    customer = UserFactory(email="reader@example.com")
    place_order(customer, (stocked_book(), 1))
    placed = DomainEvent.objects.get(event_type="OrderPlaced")

    with (
        django_capture_on_commit_callbacks(execute=True),
        suppress(Rollback),
        transaction.atomic(),
    ):
        OrderEmails().apply_batch([placed])
        assert Notification.objects.exists()
        assert mail.outbox == []  # not before the commit either
        raise Rollback

    assert mail.outbox == []
    assert not Notification.objects.exists()


@pytest.mark.django_db
def test_a_failed_send_is_sent_again_by_recovery_once(settings, django_capture_on_commit_callbacks):
    customer = UserFactory(email="reader@example.com")
    place_order(customer, (stocked_book(), 1))
    placed = DomainEvent.objects.get(event_type="OrderPlaced")
    # A real SMTP connection to a port nothing listens on: the send fails.
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9

    with django_capture_on_commit_callbacks(execute=True):
        OrderEmails().apply_batch([placed])
    unsent = Notification.objects.get()
    assert unsent.sent_at is None

    assert emails_recover() == 0  # tried a moment ago: left alone
    Notification.objects.update(attempted_at=unsent.attempted_at - timedelta(minutes=5))
    assert emails_recover() == 0  # claimed, and failed again
    assert Notification.objects.get().attempts == 1
    assert emails_recover() == 0  # the claim holds it for a while: not tried again
    assert Notification.objects.get().attempts == 1

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    Notification.objects.update(attempted_at=unsent.attempted_at - timedelta(minutes=5))
    assert emails_recover() == 1
    assert emails_recover() == 0
    assert [m.subject for m in mail.outbox] == [unsent.subject]
    assert Notification.objects.get().sent_at is not None


@pytest.mark.django_db(transaction=True, databases=["default", "read"])
def test_a_subscriber_moves_its_checkpoint_with_its_commands_so_they_run_once():
    customer = UserFactory()
    order = place_order(customer, (stocked_book(on_hand=2), 1))
    services.order_pay(actor=customer, order_id=order.pk, card_number=DECLINE)
    compensation = registry.get("orders.payment_compensation")

    runtime.catch_up(compensation)
    runtime.catch_up(compensation)

    assert DomainEvent.objects.filter(event_type="OrderCancelled").count() == 1
    checkpoint = SubscriberCheckpoint.objects.using("default").get(name=compensation.name)
    assert checkpoint.position == runtime.head_position()
    with pytest.raises(CommandError, match="never replayed"):
        call_command("rebuild_read_models", projector=["orders.payment_compensation"])
