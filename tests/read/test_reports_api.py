import pytest
from django.core.management import call_command
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from apps.cqrs import runtime
from apps.cqrs.projectors import registry
from apps.read.catalog.models import BookListing
from apps.read.reports.models import DailyRevenue, DailySales, StockLevel
from apps.write.orders import services
from tests.factories import APPROVE, StaffFactory, UserFactory, place_order, stocked_book
from tests.read.replays import replay_one_event_per_batch

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "read"])


def project_all() -> None:
    for projector in registry.replayable():
        runtime.catch_up(projector)


def staff_client() -> APIClient:
    client = APIClient()
    client.force_authenticate(StaffFactory())
    return client


def test_reports_show_bestsellers_revenue_and_low_stock_and_replay_the_same():
    popular = stocked_book(title="Popular", on_hand=20, price="10.00")
    modest = stocked_book(title="Modest", on_hand=4, price="5.00")
    customer = UserFactory()
    for _ in range(3):
        order = place_order(customer, (popular, 2))
        services.order_pay(actor=customer, order_id=order.pk, card_number=APPROVE)
    cancelled = place_order(customer, (popular, 1), (modest, 1))
    services.order_pay(actor=customer, order_id=cancelled.pk, card_number=APPROVE)
    services.order_cancel(actor=customer, order_id=cancelled.pk)
    kept = place_order(customer, (modest, 1))
    services.order_pay(actor=customer, order_id=kept.pk, card_number=APPROVE)
    project_all()
    client = staff_client()

    with (
        CaptureQueriesContext(connections["default"]) as write_queries,
        CaptureQueriesContext(connections["read"]) as read_queries,
    ):
        day = client.get("/api/reports/bestsellers/?period=day").json()
        week = client.get("/api/reports/bestsellers/?period=week").json()
        revenue = client.get("/api/reports/revenue/").json()
        low = client.get("/api/reports/low-stock/").json()

    expected = [
        {"book_id": popular.pk, "title": "Popular", "units": 6},
        {"book_id": modest.pk, "title": "Modest", "units": 1},
    ]
    assert day == week == expected
    today = timezone.now().date().isoformat()
    assert revenue[-1] == {"day": today, "revenue": "65.00", "payments": 5, "refunds": 1}
    assert low == [
        {"book_id": modest.pk, "title": "Modest", "on_hand": 3, "allow_backorder": False}
    ]
    assert BookListing.objects.get(book_id=popular.pk).units_sold == 6
    sql = [q["sql"] for q in [*write_queries.captured_queries, *read_queries.captured_queries]]
    write_tables = ("orders_", "catalog_", "inventory_", "cqrs_domainevent")
    assert not [s for s in sql if any(f'"{t}' in s for t in write_tables)], sql

    def rows():
        # Surrogate ids are row numbers, not facts: compare everything else.
        tables = []
        for model in (DailySales, DailyRevenue, StockLevel, BookListing):
            fields = [f.name for f in model._meta.fields if not f.auto_created]
            tables.append(sorted(model.objects.values_list(*fields)))
        return tables

    live = rows()
    call_command("rebuild_read_models", verbosity=0)
    assert rows() == live
    replay_one_event_per_batch("reports.figures")
    assert rows() == live


def test_reports_are_for_staff_only_and_check_their_parameters():
    customer = APIClient()
    customer.force_authenticate(UserFactory())
    for url in ["/api/reports/bestsellers/", "/api/reports/revenue/", "/api/reports/low-stock/"]:
        assert customer.get(url).status_code == 403
        assert APIClient().get(url).status_code in (401, 403)
        assert staff_client().get(url).status_code == 200
    client = staff_client()
    assert client.get("/api/reports/bestsellers/?period=year").status_code == 400
    assert client.get("/api/reports/bestsellers/?start=yesterday").status_code == 400
    assert client.get("/api/reports/revenue/?start=2026-12-01&end=2026-01-01").status_code == 400
