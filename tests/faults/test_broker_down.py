"""Redis (broker and cache) goes away while customers order: nothing is lost, nothing doubled."""

import time

import pytest
from rest_framework.authtoken.models import Token

from apps.read.orders.models import OrderSummary
from apps.write.orders.models import Order
from tests.conftest import wait_for, wait_until_caught_up
from tests.factories import UserFactory, stocked_book
from tests.faults.conftest import call, differences_from_a_fresh_rebuild

pytestmark = [
    pytest.mark.faults,
    pytest.mark.django_db(transaction=True, databases=["default", "read"]),
]
DOWN_SECONDS = 5


def test_orders_placed_while_redis_is_down_all_reach_the_read_side_once(stack, report):
    books = [stocked_book(on_hand=10_000) for _ in range(3)]
    token = Token.objects.create(user=UserFactory()).key

    def place(i: int) -> tuple[int, dict]:
        lines = [{"book_id": books[i % 3].pk, "quantity": 1 + i % 2}]
        return call("POST", f"{stack.url}/api/commands/place-order/", token=token,
                    body={"lines": lines, "shipping_address": "1 Main St"})  # fmt: skip

    before = [place(i) for i in range(5)]
    assert {status for status, _ in before} == {201}
    # The books must be in the listing before the outage: the read below checks the tables
    # serve without the cache, not how far projection had got when Redis stopped
    wait_until_caught_up()

    # When Redis stops, commands still succeed: the log is written, only the nudge is lost
    stack.redis.stop()
    while_down = []
    down_since = time.monotonic()
    while time.monotonic() - down_since < DOWN_SECONDS:
        while_down.append(place(len(while_down)))
    statuses = {status for status, _ in while_down}
    assert statuses == {201}, while_down[:3]
    assert len(while_down) >= 20  # each took well under the outage, not seconds of retries
    # Reads are served from the tables while the cache is away
    status, page = call("GET", f"{stack.url}/api/books/")
    assert status == 200
    assert len(page["results"]) == 3

    stack.redis.start()
    back_at = time.monotonic()
    placed = {body["order_id"] for _, body in before + while_down}

    def all_projected():
        """every order placed before and during the outage is on the read side"""
        return OrderSummary.objects.filter(order_id__in=placed).count() == len(placed)

    wait_for(all_projected, timeout=90, interval=0.1)
    catch_up = time.monotonic() - back_at
    wait_until_caught_up()

    # Once Redis is back, a new order is woken for again, not left to the sweep alone
    status, after = place(0)
    assert status == 201
    wait_for(lambda: OrderSummary.objects.filter(order_id=after["order_id"]).exists(), timeout=10)
    placed.add(after["order_id"])
    wait_until_caught_up()

    stack.stop_workers()
    differences = differences_from_a_fresh_rebuild()
    assert differences == {}
    assert Order.objects.count() == len(placed)
    report(
        "broker down",
        orders_while_down=len(while_down),
        down_seconds=DOWN_SECONDS,
        lost=len(placed) - OrderSummary.objects.filter(order_id__in=placed).count(),
        read_rows_differing_from_rebuild=sum(differences.values()),
        catch_up_seconds=round(catch_up, 2),
        worker_restarts=stack.restarts,
    )
