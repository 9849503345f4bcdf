"""The payment flow's answers that come late: a gateway slower than recovery's grace period."""

from datetime import timedelta
from decimal import Decimal

import pytest

from apps.cqrs.context import scope
from apps.cqrs.models import DomainEvent
from apps.write.orders import services
from apps.write.orders.models import Payment
from apps.write.orders.payments import TestGateway, clean_card_number, ledger
from tests.factories import APPROVE, DECLINE, UserFactory, place_order, stocked_book

pytestmark = pytest.mark.django_db(databases=["default", "read"])


def a_payment_recovery_gave_up_on(customer):
    """A payment whose gateway call had not arrived when recovery looked for it."""
    order = place_order(customer, (stocked_book(on_hand=3, price="8.00"), 1))
    with scope():
        payment = services._charge_start(actor=customer, order_id=order.pk, card_last4="4242")
        assert services.payments_recover(older_than=timedelta(0)) == {"given up": 1}
    payment.refresh_from_db()
    assert payment.status == Payment.Status.FAILED
    return order, payment


def test_a_charge_approved_after_recovery_gave_up_is_refunded_and_told():
    customer = UserFactory()
    order, payment = a_payment_recovery_gave_up_on(customer)
    # The slow call arrives at last, and is approved
    result = TestGateway().charge(
        key=payment.key_for("charge"),
        amount=payment.amount,
        card_number=clean_card_number(APPROVE),
        reference="x",
    )
    with scope():
        services._charge_settle(actor=customer, payment_id=payment.pk, result=result)
        services.refunds_send(payment_ids=[payment.pk])

    payment.refresh_from_db()
    order.refresh_from_db()
    assert (payment.status, payment.paid_order, order.status) == ("refunded", False, "placed")
    assert ledger().get(payment.key_for("refund"))["amount"] == "8.00"
    [refunded] = DomainEvent.objects.filter(event_type="PaymentRefunded")
    assert (refunded.data.amount, refunded.data.paid_order) == (Decimal("8.00"), False)
    assert not DomainEvent.objects.filter(event_type="OrderPaid").exists()
    # The customer pays again, once
    services.order_pay(actor=customer, order_id=order.pk, card_number=APPROVE)
    order.refresh_from_db()
    assert order.status == "paid"


def test_a_decline_after_recovery_gave_up_changes_nothing():
    customer = UserFactory()
    order, payment = a_payment_recovery_gave_up_on(customer)
    result = TestGateway().charge(
        key=payment.key_for("charge"),
        amount=payment.amount,
        card_number=clean_card_number(DECLINE),
        reference="x",
    )
    events = DomainEvent.objects.count()
    with scope():
        services._charge_settle(actor=customer, payment_id=payment.pk, result=result)
    payment.refresh_from_db()
    order.refresh_from_db()
    assert (payment.status, order.status) == ("failed", "placed")
    assert DomainEvent.objects.count() == events  # no PaymentDeclined: no cancellation follows
