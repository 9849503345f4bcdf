import threading
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connections
from rest_framework.test import APIClient

from apps.cqrs.exceptions import Conflict
from apps.cqrs.models import DomainEvent, IdempotencyKey
from apps.write.customers.services import customer_sign_up
from apps.write.inventory.models import StockItem
from apps.write.orders import services
from apps.write.orders.models import Order, OrderLine, Payment
from apps.write.orders.payments import ledger
from tests.factories import (
    APPROVE,
    DECLINE,
    WAREHOUSE,
    StaffFactory,
    UserFactory,
    place_order,
    stocked_book,
)


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def log_size() -> int:
    return DomainEvent.objects.count()


def snapshot():
    return (
        log_size(),
        Order.objects.count(),
        OrderLine.objects.count(),
        Payment.objects.count(),
        list(StockItem.objects.order_by("pk").values_list("pk", "on_hand")),
    )


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_orders_for_five_books_sell_exactly_five():
    # Given a book with 5 in stock and no backorders, and 20 customers
    book = stocked_book(on_hand=5)
    customers = [UserFactory() for _ in range(20)]
    barrier = threading.Barrier(len(customers))
    statuses: list[int] = []

    def order(customer) -> None:
        client = client_for(customer)
        barrier.wait()
        try:
            response = client.post(
                "/api/commands/place-order/",
                {"lines": [{"book_id": book.pk, "quantity": 1}], "shipping_address": "Here"},
                format="json",
            )
            statuses.append(response.status_code)
        finally:
            connections.close_all()

    # When they all order one copy at the same moment
    threads = [threading.Thread(target=order, args=(c,)) for c in customers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then exactly 5 succeed, 15 are refused with 409, and stock ends at 0
    assert sorted(statuses) == [201] * 5 + [409] * 15
    assert StockItem.objects.get(pk=book.pk).on_hand == 0
    assert Order.objects.count() == 5
    assert DomainEvent.objects.filter(event_type="StockReserved").count() == 5
    assert DomainEvent.objects.filter(event_type="OrderPlaced").count() == 5


@pytest.mark.django_db
def test_an_order_snapshots_catalog_prices_and_reserves_stock():
    book = stocked_book(on_hand=3, price="12.50")
    other = stocked_book(on_hand=1, price="3.10")
    customer = UserFactory()
    response = client_for(customer).post(
        "/api/commands/place-order/",
        {
            "lines": [{"book_id": book.pk, "quantity": 2}, {"book_id": other.pk, "quantity": 1}],
            "shipping_address": "1 Main St",
            "total": "0.01",  # a client cannot set the price: unknown fields are ignored
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    order = Order.objects.get(pk=response.json()["order_id"])
    assert order.total == Decimal("28.10")
    assert order.customer == customer
    assert [(line.title, line.unit_price, line.quantity) for line in order.lines.all()] == [
        (book.title, Decimal("12.50"), 2),
        (other.title, Decimal("3.10"), 1),
    ]
    assert StockItem.objects.get(pk=book.pk).on_hand == 1
    assert StockItem.objects.get(pk=other.pk).on_hand == 0
    placed = DomainEvent.objects.get(event_type="OrderPlaced")
    assert placed.payload["total"] == "28.10"
    assert response["X-Event-Position"] == str(placed.position)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        {"lines": []},
        {"lines": [{"book_id": 999999, "quantity": 1}]},
        {"lines": [{"book_id": "BOOK", "quantity": 1}]},
        {"lines": [{"quantity": 1}]},
        {"lines": [{"book_id": 0, "quantity": 0}]},
        {"lines": [{"book_id": 0, "quantity": -3}]},
        {"lines": [{"book_id": 0, "quantity": 10**9}]},
        {"lines": [{"book_id": 0, "quantity": "two"}]},
        {"lines": [{"book_id": 0, "quantity": 1.5}]},
        {"lines": "everything"},
        {"lines": [{"book_id": 0, "quantity": 60}, {"book_id": 0, "quantity": 60}]},
    ],
)
def test_bad_order_input_is_a_400_and_changes_nothing(body):
    book = stocked_book(on_hand=500)
    for line in body["lines"] if isinstance(body["lines"], list) else []:
        if line.get("book_id") == 0:
            line["book_id"] = book.pk
    before = snapshot()
    response = client_for(UserFactory()).post(
        "/api/commands/place-order/", {**body, "shipping_address": "Here"}, format="json"
    )
    assert response.status_code == 400, response.json()
    assert "lines" in response.json()
    assert snapshot() == before


@pytest.mark.django_db
def test_malformed_json_and_a_missing_address_are_400s():
    book = stocked_book()
    client = client_for(UserFactory())
    before = snapshot()
    assert (
        client.post(
            "/api/commands/place-order/", '{"lines": [', content_type="application/json"
        ).status_code
        == 400
    )
    response = client.post(
        "/api/commands/place-order/",
        {"lines": [{"book_id": book.pk, "quantity": 1}]},
        format="json",
    )
    assert response.status_code == 400
    assert "shipping_address" in response.json()
    assert snapshot() == before


@pytest.mark.django_db
def test_an_order_without_an_address_is_sent_to_the_profiles():
    customer = customer_sign_up(
        username="reader",
        email="reader@example.com",
        password="a-long-enough-passphrase",
        full_name="A Reader",
        shipping_address="12 Quay Street, Harwich",
    )
    order = place_order(customer.user, (stocked_book(), 1), address=" ")
    assert order.shipping_address == "12 Quay Street, Harwich"


@pytest.mark.django_db
def test_an_invalid_card_number_is_a_400_and_charges_nothing():
    customer = UserFactory()
    order = place_order(customer, (stocked_book(), 1))
    before = snapshot()
    response = client_for(customer).post(
        "/api/commands/pay-order/", {"order_id": order.pk, "card_number": "1234"}, format="json"
    )
    assert response.status_code == 400
    assert "card_number" in response.json()
    assert snapshot() == before


def _order_in(status: str, customer):
    book = stocked_book(on_hand=5)
    order = place_order(customer, (book, 1))
    if status in {"paid", "shipped", "delivered"}:
        services.order_pay(actor=customer, order_id=order.pk, card_number=APPROVE)
    if status in {"shipped", "delivered"}:
        services.order_ship(actor=WAREHOUSE, order_id=order.pk)
    if status == "delivered":
        services.order_deliver(actor=WAREHOUSE, order_id=order.pk)
    if status == "cancelled":
        services.order_cancel(actor=customer, order_id=order.pk)
    order.refresh_from_db()
    assert order.status == status
    return order


ACTIONS = {
    # action: (endpoint, who, the statuses it is allowed from)
    "pay": ("pay-order", "customer", {"placed"}),
    "cancel (customer)": ("cancel-order", "customer", {"placed", "paid"}),
    "cancel (staff)": ("cancel-order", "staff", {"placed", "paid", "shipped"}),
    "ship": ("ship-order", "staff", {"paid"}),
    "deliver": ("deliver-order", "staff", {"shipped"}),
}
ILLEGAL = [
    (action, status)
    for action, (_, _, allowed) in ACTIONS.items()
    for status in ["placed", "paid", "shipped", "delivered", "cancelled"]
    if status not in allowed
]


@pytest.mark.django_db
@pytest.mark.parametrize(("action", "status"), ILLEGAL)
def test_every_illegal_transition_is_a_409_and_records_nothing(action, status):
    customer = UserFactory()
    order = _order_in(status, customer)
    endpoint, who, _ = ACTIONS[action]
    client = client_for(customer if who == "customer" else StaffFactory())
    body = {"order_id": order.pk}
    if endpoint == "pay-order":
        body["card_number"] = APPROVE
    before = snapshot()

    response = client.post(f"/api/commands/{endpoint}/", body, format="json")

    assert response.status_code == 409, response.json()
    assert f"order {order.pk}" in response.json()["detail"]
    assert snapshot() == before


@pytest.mark.django_db
def test_the_legal_path_records_each_step():
    customer = UserFactory()
    order = _order_in("delivered", customer)
    types = list(
        DomainEvent.objects.filter(aggregate_type="order", aggregate_id=str(order.pk)).values_list(
            "event_type", "aggregate_version"
        )
    )
    assert types == [
        ("OrderPlaced", 1),
        ("OrderPaid", 2),
        ("OrderShipped", 3),
        ("OrderDelivered", 4),
    ]


@pytest.mark.django_db
def test_cancelling_a_paid_order_refunds_it_and_puts_the_stock_back(
    django_capture_on_commit_callbacks,
):
    customer = UserFactory()
    book = stocked_book(on_hand=4)
    order = place_order(customer, (book, 3))
    services.order_pay(actor=customer, order_id=order.pk, card_number=APPROVE)
    payment = Payment.objects.get(order=order)

    with django_capture_on_commit_callbacks(execute=False) as after_commit:
        response = client_for(customer).post(
            "/api/commands/cancel-order/",
            {"order_id": order.pk, "reason": "Changed my mind"},
            format="json",
        )

    assert response.status_code == 200
    assert StockItem.objects.get(pk=book.pk).on_hand == 4
    cancelled = DomainEvent.objects.get(event_type="OrderCancelled")
    assert cancelled.payload["refunded"] == "30.00"
    assert cancelled.payload["released"] == [{"book_id": book.pk, "quantity": 3}]
    # The money goes back once the cancellation has committed, not from inside it
    payment.refresh_from_db()
    assert payment.status == Payment.Status.REFUND_PENDING
    assert ledger().get(payment.key_for("refund")) is None
    for callback in after_commit:
        callback()
    payment.refresh_from_db()
    assert payment.status == Payment.Status.REFUNDED
    assert ledger().get(payment.key_for("refund"))["amount"] == "30.00"
    refunded = DomainEvent.objects.get(event_type="PaymentRefunded")
    assert (refunded.data.amount, refunded.data.paid_order) == (Decimal("30.00"), True)
    assert refunded.actor == "system:payment-recovery"


@pytest.mark.django_db
def test_a_declined_card_is_a_402_recorded_as_a_fact():
    customer = UserFactory()
    order = place_order(customer, (stocked_book(), 1))
    response = client_for(customer).post(
        "/api/commands/pay-order/", {"order_id": order.pk, "card_number": DECLINE}, format="json"
    )
    assert response.status_code == 402
    assert response.json()["payment_status"] == "declined"
    assert DomainEvent.objects.filter(event_type="PaymentDeclined").count() == 1
    # A second attempt is refused: the order is being cancelled.
    again = client_for(customer).post(
        "/api/commands/pay-order/", {"order_id": order.pk, "card_number": APPROVE}, format="json"
    )
    assert again.status_code == 409


@pytest.mark.django_db
def test_a_declined_card_at_checkout_is_a_402_and_leaves_no_order():
    customer = UserFactory()
    book = stocked_book(on_hand=4)
    before = snapshot()[:3]
    response = client_for(customer).post(
        "/api/commands/checkout/",
        {
            "lines": [{"book_id": book.pk, "quantity": 1}],
            "shipping_address": "H",
            "card_number": DECLINE,
        },
        format="json",
    )
    assert response.status_code == 402
    assert response.json()["card_number"] == ["The card was declined. Nothing was charged."]
    assert snapshot()[:3] == before  # no event, no order
    # The attempt is kept, as the gateway has it: declined, nothing held or voided
    payment = Payment.objects.get()
    assert (payment.order, payment.status) == (None, Payment.Status.DECLINED)
    assert ledger().get(payment.key_for("authorize"))["approved"] is False
    assert ledger().get(payment.key_for("void")) is None


@pytest.mark.django_db
def test_checkout_voids_the_hold_when_the_order_cannot_be_placed():
    customer = UserFactory()
    book = stocked_book(on_hand=1)
    before = snapshot()[:3]
    with pytest.raises(Conflict, match="Only 1"):
        services.order_checkout(
            actor=customer,
            lines=[{"book_id": book.pk, "quantity": 2}],
            shipping_address="Here",
            card_number=APPROVE,
        )
    assert snapshot()[:3] == before
    payment = Payment.objects.get()
    assert (payment.order, payment.status) == (None, Payment.Status.VOIDED)
    hold = ledger().get(payment.key_for("authorize"))
    assert ledger().get(payment.key_for("void"))["authorization"] == hold["reference"]
    assert ledger().get(payment.key_for("capture")) is None


@pytest.mark.django_db
def test_a_customer_cannot_touch_another_customers_order():
    owner, stranger = UserFactory(), UserFactory()
    order = place_order(owner, (stocked_book(), 1))
    before = snapshot()
    for endpoint, body in [
        ("pay-order", {"order_id": order.pk, "card_number": APPROVE}),
        ("cancel-order", {"order_id": order.pk}),
    ]:
        response = client_for(stranger).post(f"/api/commands/{endpoint}/", body, format="json")
        assert response.status_code == 404
    assert snapshot() == before


@pytest.mark.django_db
def test_the_same_idempotency_key_places_one_order():
    customer = UserFactory()
    book = stocked_book(on_hand=10)
    client = client_for(customer)
    body = {"lines": [{"book_id": book.pk, "quantity": 2}], "shipping_address": "Here"}

    first = client.post(
        "/api/commands/place-order/", body, format="json", HTTP_IDEMPOTENCY_KEY="k1"
    )
    again = client.post(
        "/api/commands/place-order/", body, format="json", HTTP_IDEMPOTENCY_KEY="k1"
    )

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Order.objects.count() == 1
    assert StockItem.objects.get(pk=book.pk).on_hand == 8

    changed = client.post(
        "/api/commands/place-order/",
        {**body, "lines": [{"book_id": book.pk, "quantity": 3}]},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k1",
    )
    assert changed.status_code == 422
    assert Order.objects.count() == 1

    # A key belongs to its user: another customer's "k1" is another order
    other = client_for(UserFactory()).post(
        "/api/commands/place-order/", body, format="json", HTTP_IDEMPOTENCY_KEY="k1"
    )
    assert other.status_code == 201
    assert Order.objects.count() == 2
    assert IdempotencyKey.objects.count() == 2


@pytest.mark.django_db
def test_a_failed_command_does_not_burn_its_idempotency_key():
    customer = UserFactory()
    book = stocked_book(on_hand=1)
    client = client_for(customer)
    body = {"lines": [{"book_id": book.pk, "quantity": 2}], "shipping_address": "Here"}
    refused = client.post(
        "/api/commands/place-order/", body, format="json", HTTP_IDEMPOTENCY_KEY="k"
    )
    assert refused.status_code == 409
    from apps.write.inventory import services as inventory

    inventory.stock_receive(actor=None, book_id=book.pk, quantity=1)
    retried = client.post(
        "/api/commands/place-order/", body, format="json", HTTP_IDEMPOTENCY_KEY="k"
    )
    assert retried.status_code == 201


@pytest.mark.django_db
def test_a_book_allowing_backorders_takes_orders_beyond_stock():
    book = stocked_book(on_hand=2, allow_backorder=True)
    order = place_order(UserFactory(), (book, 5))
    line = order.lines.get()
    assert (line.quantity, line.backordered) == (5, 3)
    assert StockItem.objects.get(pk=book.pk).on_hand == 0
    # It cannot ship until the backorder is filled
    services.order_pay(actor=order.customer, order_id=order.pk, card_number=APPROVE)
    response = client_for(StaffFactory()).post(
        "/api/commands/ship-order/", {"order_id": order.pk}, format="json"
    )
    assert response.status_code == 409


@pytest.mark.django_db
def test_orders_left_unpaid_past_the_timeout_are_cancelled_and_release_stock(settings):
    from datetime import timedelta

    from django.utils import timezone

    from apps.write.orders.tasks import cancel_unpaid

    settings.ORDER_PAYMENT_TIMEOUT_MINUTES = 30
    book = stocked_book(on_hand=5)
    customer = UserFactory()
    stale, fresh, paid = (place_order(customer, (book, 1)) for _ in range(3))
    services.order_pay(actor=customer, order_id=paid.pk, card_number=APPROVE)
    Order.objects.filter(pk__in=[stale.pk, paid.pk]).update(
        placed_at=timezone.now() - timedelta(minutes=31)
    )

    assert cancel_unpaid() == 1

    statuses = dict(Order.objects.values_list("pk", "status"))
    assert statuses == {stale.pk: "cancelled", fresh.pk: "placed", paid.pk: "paid"}
    assert StockItem.objects.get(pk=book.pk).on_hand == 3
    cancelled = DomainEvent.objects.get(event_type="OrderCancelled")
    assert (cancelled.payload["reason"], cancelled.actor) == (
        "Payment timed out",
        "system:unpaid-order-timer",
    )


@pytest.mark.django_db
def test_customer_commands_are_throttled(monkeypatch):
    from rest_framework.throttling import ScopedRateThrottle

    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "customer-commands", "3/min")
    client = client_for(UserFactory())
    body = {"full_name": "A Reader", "shipping_address": "Here"}
    codes = [
        client.post("/api/commands/update-profile/", body, format="json").status_code
        for _ in range(4)
    ]
    assert codes == [200, 200, 200, 429]


@pytest.mark.django_db
def test_the_shops_own_actors_have_only_the_rights_they_are_given():
    customer = UserFactory()
    order = place_order(customer, (stocked_book(on_hand=5), 1))
    services.order_pay(actor=customer, order_id=order.pk, card_number=APPROVE)
    before = snapshot()
    # No actor is no one: never staff
    with pytest.raises(TypeError, match="need an actor"):
        services.order_ship(actor=None, order_id=order.pk)
    # The payment compensation may cancel, not ship
    with pytest.raises(PermissionDenied, match=r"payment-compensation may not orders\.ship"):
        services.order_ship(actor=services.PAYMENT_COMPENSATION, order_id=order.pk)
    assert snapshot() == before
    # ... and cancels only what a customer could, under its own name in the log
    services.order_cancel(actor=services.PAYMENT_COMPENSATION, order_id=order.pk)
    cancelled = DomainEvent.objects.get(event_type="OrderCancelled")
    assert cancelled.actor == "system:payment-compensation"
    assert cancelled.actor_id is None
    assert cancelled.data.by_staff is False
