import time

import pytest
from django.core.management import call_command
from django.db import connections
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from apps.cqrs import runtime
from apps.cqrs.models import DomainEvent
from apps.cqrs.projectors import registry
from apps.read.orders.models import CustomerTotals, OrderSummary
from apps.write.orders import services
from tests.factories import APPROVE, WAREHOUSE, StaffFactory, UserFactory, place_order, stocked_book
from tests.read.replays import replay_one_event_per_batch

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "read"])


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def project_all() -> None:
    for projector in registry.replayable():
        runtime.catch_up(projector)


def rows(model) -> list[tuple]:
    return list(model.objects.order_by("pk").values_list())


@pytest.mark.worker
def test_a_customer_reads_their_own_order_on_the_first_request(celery_worker):
    customer = UserFactory()
    book = stocked_book(on_hand=5, price="9.50")
    client = client_for(customer)

    placed = client.post(
        "/api/commands/place-order/",
        {"lines": [{"book_id": book.pk, "quantity": 2}], "shipping_address": "1 Main St"},
        format="json",
    )
    assert placed.status_code == 201
    started = time.monotonic()
    response = client.get("/api/orders/", HTTP_X_MIN_POSITION=placed["X-Event-Position"])
    waited = time.monotonic() - started

    assert response.status_code == 200
    assert response["X-Read-Consistency"] == "fresh"
    assert int(response["X-Read-Position"]) >= int(placed["X-Event-Position"])
    [order] = response.json()["results"]
    assert order["id"] == placed.json()["order_id"]
    assert (order["status"], order["total"], order["item_count"]) == ("placed", "19.00", 2)
    assert order["lines"][0]["title"] == book.title
    print(f"\nread-your-writes: order visible after {waited * 1000:.0f} ms")


def test_customers_see_only_their_own_orders_and_staff_see_all():
    alice, bob = UserFactory(), UserFactory()
    book = stocked_book(on_hand=10)
    mine = place_order(alice, (book, 1))
    theirs = place_order(bob, (book, 1))
    project_all()

    listed = client_for(alice).get("/api/orders/").json()["results"]
    assert [o["id"] for o in listed] == [mine.pk]
    assert client_for(alice).get(f"/api/orders/{theirs.pk}/").status_code == 404
    assert client_for(alice).get(f"/api/orders/{mine.pk}/").status_code == 200
    assert APIClient().get("/api/orders/").status_code in (401, 403)
    staff = client_for(StaffFactory())
    assert {o["id"] for o in staff.get("/api/orders/").json()["results"]} == {mine.pk, theirs.pk}
    assert [o["id"] for o in staff.get(f"/api/orders/?customer_id={bob.pk}").json()["results"]] == [
        theirs.pk
    ]


def test_past_the_bound_a_query_answers_with_what_it_has_and_says_so(settings):
    settings.CQRS_READ_WAIT_SECONDS = 0.2
    customer = UserFactory()
    place_order(customer, (stocked_book(), 1))  # not projected: no worker in this test
    head = DomainEvent.objects.order_by("-position").values_list("position", flat=True)[0]

    started = time.monotonic()
    response = client_for(customer).get("/api/orders/", HTTP_X_MIN_POSITION=str(head))

    assert response.status_code == 200
    assert 0.2 <= time.monotonic() - started < 2
    assert response["X-Read-Consistency"] == "stale"
    assert response.json()["results"] == []
    assert int(response["X-Read-Lag"]) > 0


@pytest.mark.parametrize("value", ["soon", "-4", "1.5"])
def test_a_malformed_min_position_is_a_400(value):
    response = client_for(UserFactory()).get("/api/orders/", HTTP_X_MIN_POSITION=value)
    assert response.status_code == 400
    assert "min_position" in response.json()


def test_the_order_timeline_and_totals_follow_the_order_and_replay_to_the_same_rows():
    customer = UserFactory()
    book = stocked_book(on_hand=10, price="10.00")
    delivered = place_order(customer, (book, 2))
    services.order_pay(actor=customer, order_id=delivered.pk, card_number=APPROVE)
    services.order_ship(actor=WAREHOUSE, order_id=delivered.pk)
    services.order_deliver(actor=WAREHOUSE, order_id=delivered.pk)
    refunded = place_order(customer, (book, 1))
    services.order_pay(actor=customer, order_id=refunded.pk, card_number=APPROVE)
    services.order_cancel(actor=customer, order_id=refunded.pk, reason="Gift already bought")
    project_all()

    summary = OrderSummary.objects.get(order_id=delivered.pk)
    assert [step["status"] for step in summary.timeline] == [
        "placed",
        "paid",
        "shipped",
        "delivered",
    ]
    cancelled = OrderSummary.objects.get(order_id=refunded.pk)
    assert (cancelled.status, str(cancelled.refunded), cancelled.cancel_reason) == (
        "cancelled",
        "10.00",
        "Gift already bought",
    )
    totals = CustomerTotals.objects.get(customer_id=customer.pk)
    assert (totals.orders, str(totals.spent)) == (2, "20.00")

    live = (rows(OrderSummary), rows(CustomerTotals))
    call_command("rebuild_read_models", verbosity=0)
    assert (rows(OrderSummary), rows(CustomerTotals)) == live
    # ... and to the same rows again when every event comes in a batch of its own
    replay_one_event_per_batch("orders.history")
    assert (rows(OrderSummary), rows(CustomerTotals)) == live


def test_the_orders_endpoints_read_the_read_model_only():
    customer = UserFactory()
    order = place_order(customer, (stocked_book(), 1))
    project_all()
    client = client_for(customer)
    client.get("/api/orders/")  # authentication's own queries (auth_user) are not the point

    with (
        CaptureQueriesContext(connections["default"]) as write_queries,
        CaptureQueriesContext(connections["read"]) as read_queries,
    ):
        assert client.get("/api/orders/").status_code == 200
        assert client.get(f"/api/orders/{order.pk}/").status_code == 200

    sql = [q["sql"] for q in [*write_queries.captured_queries, *read_queries.captured_queries]]
    assert any("read_orders_ordersummary" in s for s in sql)
    write_tables = ("orders_", "catalog_", "inventory_", "customers_", "cqrs_domainevent")
    assert not [s for s in sql if any(f'"{t}' in s for t in write_tables)], sql


@pytest.mark.django_db(databases=["default", "read"])
def test_a_position_beyond_the_head_is_answered_at_once_not_waited_for(client):
    customer = UserFactory()
    order = place_order(customer, (stocked_book(), 1))
    runtime.catch_up(registry.get("orders.history"))
    head = DomainEvent.objects.order_by("-position").values_list("position", flat=True)[0]
    api = APIClient()
    started = time.monotonic()
    for url in ["/api/books/", f"/api/books/?min_position={head + 1000}"]:
        response = api.get(url, headers={"X-Min-Position": str(head + 1)})
        assert response.status_code == 400
        assert "No event has position" in str(response.json()["min_position"])
    client.force_login(customer)
    page = client.get(f"/orders/{order.pk}/?after={head + 50}")
    assert page.status_code == 200  # the order as it is, without waiting
    assert time.monotonic() - started < 1.0  # the wait bound is 2 s per request
