"""A process that dies at any step between a gateway call and its record: after recovery, the
test gateway's ledger and the event log agree for every order. No order is charged twice, no
refund is missing from the log, no money is taken for an order that does not exist, and no hold
is left on a card.

Each case runs one payment flow in a process of its own (tests/faults/payment_step.py), killed
with os._exit at a named failpoint (apps/write/orders/failpoints.py), then runs the recovery
twice, as the beat would."""

import subprocess
import sys
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings

from apps.cqrs.context import scope
from apps.cqrs.models import DomainEvent
from apps.write.orders import services
from apps.write.orders.failpoints import EXIT_CODE
from apps.write.orders.models import Order, Payment
from apps.write.orders.payments import ledger
from tests.factories import APPROVE, UserFactory, place_order, stocked_book
from tests.processes import subprocess_env

pytestmark = [
    pytest.mark.faults,
    pytest.mark.django_db(transaction=True, databases=["default", "read"]),
]
CASES = [
    ("pay", None),
    ("pay", "pay:before-gateway"),
    ("pay", "pay:after-gateway"),
    ("pay", "settle:before-commit"),
    ("checkout", None),
    ("checkout", "checkout:before-gateway"),
    ("checkout", "checkout:after-authorize"),
    ("checkout", "checkout:after-place"),
    ("checkout", "checkout:after-capture"),
    ("checkout", "settle:before-commit"),
    ("cancel", None),
    ("cancel", "cancel:after-commit"),
    ("cancel", "refund:before-gateway"),
    ("cancel", "refund:after-gateway"),
    ("cancel", "refund:before-commit"),
]
OUTCOMES: dict[str, str] = {}


def run_step(flow: str, failpoint: str | None, customer_id: int, target: int) -> int:
    env = {**subprocess_env(), "FAILPOINT": failpoint or ""}
    argv = [sys.executable, "-m", "tests.faults.payment_step", flow, str(customer_id), str(target)]
    return subprocess.run(argv, cwd=settings.BASE_DIR, env=env, timeout=60).returncode


def disagreements() -> dict[str, list]:
    """Every way the gateway's ledger and the log disagree, per kind (empty lists when none)."""
    calls = defaultdict(list)  # payment key -> every ledger entry of its calls
    for entry in ledger().entries():
        calls[entry["key"].split(":")[0]].append(entry)
    paid_in_log = defaultdict(Decimal)  # order id -> OrderPaid amounts
    refunded_in_log = {}  # payment id -> PaymentRefunded
    for event in DomainEvent.objects.filter(event_type__in=["OrderPaid", "PaymentRefunded"]):
        if event.event_type == "OrderPaid":
            paid_in_log[event.data.order_id] += event.data.amount
        else:
            refunded_in_log[event.data.payment_id] = event.data
    found = {
        "double_charges": [],
        "refunds_the_log_does_not_know": [],
        "money_without_an_order": [],
        "holds_left": [],
        "charges_the_log_does_not_know": [],
    }
    taken = defaultdict(Decimal)  # order id -> what the gateway holds of its money
    for payment in Payment.objects.all():
        entries = calls.get(str(payment.key), [])
        done = {entry["operation"] for entry in entries}

        def total(*operations, entries=entries) -> Decimal:
            return sum(
                (Decimal(e["amount"]) for e in entries
                 if e["operation"] in operations and e["approved"]),
                Decimal("0"),
            )  # fmt: skip

        money_in, money_out = total("charge", "capture"), total("refund")
        if "refund" in done and payment.pk not in refunded_in_log:
            found["refunds_the_log_does_not_know"].append(payment.pk)
        if money_in and payment.order_id is None:
            found["money_without_an_order"].append(payment.pk)
        if total("authorize") and not done & {"capture", "void"}:
            found["holds_left"].append(payment.pk)
        if money_in and not payment.paid_order and payment.pk not in refunded_in_log:
            found["charges_the_log_does_not_know"].append(payment.pk)
        if payment.order_id:
            taken[payment.order_id] += money_in - money_out
    for order in Order.objects.all():
        log_says = paid_in_log[order.pk] - sum(
            (r.amount for r in refunded_in_log.values() if r.order_id == order.pk and r.paid_order),
            Decimal("0"),
        )
        if taken[order.pk] > order.total or taken[order.pk] != log_says:
            found["double_charges"].append((order.pk, taken[order.pk], log_says))
    return found


def outcome(order: Order | None, payment: Payment) -> str:
    if order is None:
        return f"no order, payment {payment.status}"
    return f"order {order.status}, payment {payment.status}"


@pytest.mark.parametrize(("flow", "failpoint"), CASES)
def test_after_a_crash_and_recovery_the_gateway_and_the_log_agree(flow, failpoint, report):
    ledger().clear()
    customer = UserFactory()
    book = stocked_book(on_hand=5, price="12.50")
    order = None
    if flow == "checkout":
        target = book.pk
    else:
        order = place_order(customer, (book, 2))
        target = order.pk
        if flow == "cancel":
            with scope():
                services.order_pay(actor=customer, order_id=order.pk, card_number=APPROVE)

    code = run_step(flow, failpoint, customer.pk, target)
    assert code == (EXIT_CODE if failpoint else 0)

    with scope():
        first = services.payments_recover(older_than=timedelta(0))
        again = services.payments_recover(older_than=timedelta(0))
    assert again == {}  # nothing left for a second run

    assert disagreements() == {
        "double_charges": [],
        "refunds_the_log_does_not_know": [],
        "money_without_an_order": [],
        "holds_left": [],
        "charges_the_log_does_not_know": [],
    }
    payment = Payment.objects.order_by("pk").last()
    order = payment.order
    if order is not None:
        order.refresh_from_db()
    # Where nothing was charged, the customer can pay again; where it was, the order is paid
    if flow == "pay":
        assert (order.status, payment.status) in {("paid", "approved"), ("placed", "failed")}
    elif flow == "checkout":
        assert (order and order.status, payment.status) in {
            ("paid", "approved"),
            (None, "failed"),
            (None, "voided"),
        }
    else:
        assert (order.status, payment.status) == ("cancelled", "refunded")
    OUTCOMES[f"{flow} killed at {failpoint or 'nothing'}"] = (
        f"{outcome(order, payment)}; recovery: {first or 'nothing to do'}"
    )
    report("payment crashes", cases=len(OUTCOMES), **OUTCOMES)
