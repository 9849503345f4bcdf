"""The database goes away while commands run and the worker projects: commands answer 503, not
500, nothing is half-applied, and the worker recovers by itself."""

import threading
import time
from collections import Counter

import pytest
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from apps.cqrs.models import DomainEvent
from apps.read.orders.models import OrderSummary
from apps.write.inventory.models import StockItem
from apps.write.orders.models import Order, OrderLine
from tests.conftest import wait_until_caught_up
from tests.factories import UserFactory, stocked_book
from tests.faults.conftest import (
    call,
    differences_from_a_fresh_rebuild,
    set_databases_reachable,
)

pytestmark = [
    pytest.mark.faults,
    pytest.mark.django_db(transaction=True, databases=["default", "read"]),
]
AWAY_SECONDS = 3
STOCK = 100_000


def test_commands_answer_503_while_the_database_is_away_and_nothing_is_half_applied(stack, report):
    books = [stocked_book(on_hand=STOCK) for _ in range(4)]
    tokens = [Token.objects.create(user=UserFactory()).key for _ in range(4)]
    # A large log for the worker to be projecting when the database goes
    call_command("bulk_seed_catalog", books=10_000, verbosity=0)
    results: list[tuple[float, int, dict]] = []
    stop = threading.Event()

    def customer(n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            order = {
                "lines": [{"book_id": books[(n + i) % 4].pk, "quantity": 1 + i % 3}],
                "shipping_address": "2 Elm St",
            }
            url = f"{stack.url}/api/commands/place-order/"
            status, body = call("POST", url, token=tokens[n], body=order)
            results.append((time.monotonic(), status, body))

    threads = [threading.Thread(target=customer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(2)
        away_from = time.monotonic()
        set_databases_reachable(False)
        time.sleep(AWAY_SECONDS)
        set_databases_reachable(True)
        back_at = time.monotonic()
        time.sleep(3)
    finally:
        set_databases_reachable(True)
        stop.set()
        for thread in threads:
            thread.join()

    statuses = Counter(status for _, status, _ in results)
    while_away = Counter(status for t, status, _ in results if away_from < t < back_at)
    after = [status for t, status, _ in results if t > back_at + 1]
    assert set(statuses) <= {201, 503}, statuses
    assert while_away[503] > 0
    assert after
    assert set(after) == {201}

    # Nothing half-applied: each 201 is one order with its lines and its event, each 503 none,
    # and stock on hand is what was received less what the orders took
    accepted = {body["order_id"] for _, status, body in results if status == 201}
    assert set(Order.objects.values_list("pk", flat=True)) == accepted
    assert DomainEvent.objects.filter(event_type="OrderPlaced").count() == len(accepted)
    for book in books:
        taken = sum(OrderLine.objects.filter(book_id=book.pk).values_list("quantity", flat=True))
        assert StockItem.objects.get(book_id=book.pk).on_hand == STOCK - taken

    # The worker came back by itself and the read models equal a replay of the log
    recovery = wait_until_caught_up(timeout=120)
    assert OrderSummary.objects.filter(order_id__in=accepted).count() == len(accepted)
    stack.stop_workers()
    differences = differences_from_a_fresh_rebuild()
    assert differences == {}
    report(
        "database lost",
        away_seconds=AWAY_SECONDS,
        requests=sum(statuses.values()),
        accepted_201=statuses[201],
        refused_503=statuses[503],
        server_errors_500=statuses[500],
        orders_half_applied=0,
        worker_caught_up_after_seconds=round(recovery, 2),
        rows_differing_from_rebuild=sum(differences.values()),
    )
