"""A customer's open order page follows the order live, over server-sent events, through the
gateway and the pools production runs, with a real worker."""

import pytest
from playwright.sync_api import expect

from apps.read.orders.models import OrderSummary
from apps.write.orders import services as orders
from tests.browser.test_journeys import log_in
from tests.conftest import wait_for
from tests.factories import APPROVE, StaffFactory, UserFactory, place_order, stocked_book
from tests.processes import start_gateway, start_web, subprocess_env

pytestmark = [
    pytest.mark.browser,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True, databases=["default", "read"]),
]


@pytest.fixture
def shop(django_db_setup, collected_static, tmp_path):
    """The production shape: the gateway in front of a command pool and a query pool (sync
    workers) and a live pool (uvicorn workers), which serves the order's event stream."""
    pools = {
        name: [start_web(env=subprocess_env(), logdir=tmp_path, name=name, workers=1, asgi=asgi)]
        for name, asgi in [("commands", False), ("queries", False), ("live", True)]
    }
    gateway = start_gateway(pools=pools, logdir=tmp_path)
    gateway.pools = pools
    yield gateway
    gateway.stop()
    for [web] in pools.values():
        web.kill()  # the live pool would first finish the page's open event stream


def test_the_order_page_shows_a_shipment_without_a_reload(
    shop, celery_worker, page, shoot, settings
):
    # The server checks passwords with production's hashers, not the tests' fast one.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    customer = UserFactory(username="follower")
    order = place_order(customer, (stocked_book(title="The Dispossessed", on_hand=3), 1))
    orders.order_pay(actor=customer, order_id=order.pk, card_number=APPROVE)
    wait_for(lambda: OrderSummary.objects.filter(order_id=order.pk, status="paid").exists())
    log_in(page, shop.url, "follower")
    page.goto(f"{shop.url}/orders/{order.pk}/")
    heading = page.locator("h1")
    expect(heading).to_have_text(f"Order #{order.pk}: Paid", timeout=15_000)
    # A reload would lose this; the page must change in place.
    page.evaluate("window.stillTheSamePage = true")
    shoot("paid")

    orders.order_ship(actor=StaffFactory(), order_id=order.pk)

    expect(heading).to_have_text(f"Order #{order.pk}: Shipped", timeout=15_000)
    expect(page.locator("ol.timeline li").last).to_contain_text("Shipped")
    assert page.evaluate("window.stillTheSamePage") is True
    assert f"/api/orders/{order.pk}/events/" in shop.pools["live"][0].log()
    shoot("shipped")
