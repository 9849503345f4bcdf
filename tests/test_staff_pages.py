import uuid

import pytest
from django.contrib.auth import get_user_model

from apps.audit.history import history
from apps.cqrs import runtime
from apps.cqrs.context import scope
from apps.cqrs.models import DomainEvent
from apps.cqrs.projectors import registry
from apps.write.orders import services
from tests.factories import APPROVE, WAREHOUSE, UserFactory, place_order, stocked_book

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "read"])


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_superuser("chief", "chief@example.com", "pw")
    client.force_login(user)
    return client


def test_the_projections_dashboard_shows_lag_and_errors(staff_client):
    stocked_book()
    runtime.catch_up(registry.get("catalog.book_listing"))
    page = staff_client.get("/admin/cqrs/projections/").content.decode()
    for projector in registry.all():
        assert projector.name in page
    assert "Rebuild" in page
    assert "csrfmiddlewaretoken" in page

    retried = staff_client.post("/admin/cqrs/projections/orders.history/retry/", follow=True)
    assert "Catching up orders.history now." in retried.content.decode()
    refused = staff_client.post("/admin/cqrs/projections/orders.emails/rebuild/", follow=True)
    assert "never replayed" in refused.content.decode()
    assert staff_client.post("/admin/cqrs/projections/nope/retry/").status_code == 404


def test_staff_pages_are_for_staff(client):
    client.force_login(UserFactory())
    for url in [
        "/admin/cqrs/projections/",
        f"/admin/cqrs/flow/{uuid.uuid4()}/",
        "/admin/history/book/1/",
    ]:
        response = client.get(url)
        assert response.status_code == 302
        assert "/admin/login/" in response["Location"]


def test_a_flow_shows_the_command_its_events_and_each_projectors_progress(staff_client):
    customer = UserFactory()
    book = stocked_book(on_hand=3)
    correlation = uuid.uuid4()
    with scope(correlation_id=correlation):
        order = place_order(customer, (book, 1))
    runtime.catch_up(registry.get("orders.history"))

    page = staff_client.get(f"/admin/cqrs/flow/{correlation}/").content.decode()

    assert "OrderPlaced" in page
    assert "StockReserved" in page
    assert "orders.place" in page
    assert "orders.history: <strong>applied</strong>" in page
    assert "reports.figures: <strong>pending</strong>" in page
    assert f"/admin/history/order/{order.pk}/" in page
    assert staff_client.get(f"/admin/cqrs/flow/{uuid.uuid4()}/").status_code == 404


def test_history_reconstructs_the_state_after_each_event(staff_client):
    customer = UserFactory()
    order = place_order(customer, (stocked_book(on_hand=3, price="8.00"), 2))
    services.order_pay(actor=customer, order_id=order.pk, card_number=APPROVE)
    services.order_ship(actor=WAREHOUSE, order_id=order.pk)

    steps = history(aggregate_type="order", aggregate_id=str(order.pk))
    assert [(e.event_type, s["status"]) for e, s in steps] == [
        ("OrderPlaced", "placed"),
        ("OrderPaid", "paid"),
        ("OrderShipped", "shipped"),
    ]
    assert steps[1][1]["paid"] == "16.00"
    paid_at = DomainEvent.objects.get(event_type="OrderPaid").position
    as_it_was = history(aggregate_type="order", aggregate_id=str(order.pk), until=paid_at)
    assert as_it_was[-1][1]["status"] == "paid"

    page = staff_client.get(f"/admin/history/order/{order.pk}/").content.decode()
    assert "OrderShipped" in page
    assert "shipped" in page
    assert staff_client.get("/admin/history/order/999999/").status_code == 404
    order_admin = staff_client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert f"/admin/history/order/{order.pk}/" in order_admin


def test_the_reports_page_charts_revenue_and_lists_bestsellers_and_low_stock(staff_client):
    from apps.read.reports.admin_views import CHART_HEIGHT, revenue_bars

    customer = UserFactory()
    book = stocked_book(title="Chart Topper", on_hand=4, price="20.00")
    order = place_order(customer, (book, 2))
    services.order_pay(actor=customer, order_id=order.pk, card_number=APPROVE)
    for projector in registry.replayable():
        runtime.catch_up(projector)

    bars = revenue_bars(end=order.placed_at.date())
    assert len(bars) == 30
    assert (str(bars[-1]["revenue"]), bars[-1]["height"]) == ("40.00", CHART_HEIGHT - 20)
    assert {bar["height"] for bar in bars[:-1]} == {0.0}

    page = staff_client.get("/admin/reports/").content.decode()
    assert page.count("<rect ") == 30
    assert "Revenue, last 30 days: $40.00" in page
    assert "<td>Chart Topper</td><td>2</td>" in page  # this week's bestseller
    assert ">Chart Topper</a></td><td>2</td>" in page  # and low on stock now
    customer_client = staff_client.__class__()
    customer_client.force_login(customer)
    assert customer_client.get("/admin/reports/").status_code == 302
