"""Minutes of mixed traffic (browsing, searching, ordering, paying, cancelling, staff price and
stock changes) on gunicorn with two Celery workers; afterwards the read models agree with the
write model and with a replay, stock adds up for every book, and no 5xx was served.

LOAD_SECONDS sets the length (45 s by default, which CI runs; the closing note of issue 7 gives
a 180 s run)."""

import os
import random
import threading
import time
from collections import Counter
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from apps.audit.checks import audit
from apps.cqrs.models import DomainEvent
from apps.write.inventory.models import StockItem
from apps.write.orders.models import Order
from tests.conftest import wait_until_caught_up
from tests.factories import APPROVE, DECLINE, UserFactory, add_author, stocked_book
from tests.faults.conftest import call, differences_from_a_fresh_rebuild

pytestmark = [
    pytest.mark.faults,
    pytest.mark.django_db(transaction=True, databases=["default", "read"]),
]
LOAD_SECONDS = float(os.environ.get("LOAD_SECONDS", "45"))
CUSTOMERS = 6
WORDS = ["river", "glass", "winter", "harbor", "lantern", "orchard", "signal", "meadow"]


class Traffic:
    def __init__(self, url: str) -> None:
        self.url = url
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.lock = threading.Lock()

    def send(self, action: str, method: str, path: str, **kwargs) -> tuple[int, dict]:
        status, body = call(method, f"{self.url}{path}", **kwargs)
        with self.lock:
            self.statuses[(action, status)] += 1
        return status, body

    def count(self, predicate) -> int:
        return sum(n for (action, status), n in self.statuses.items() if predicate(action, status))


def customer(traffic: Traffic, token: str, book_ids: list[int], seed: int, until: float) -> None:
    rng = random.Random(seed)

    def command(action: str, name: str, body: dict) -> tuple[int, dict]:
        return traffic.send(action, "POST", f"/api/commands/{name}/", token=token, body=body)

    def card() -> str:
        return DECLINE if rng.random() < 0.1 else APPROVE

    while time.monotonic() < until:
        roll = rng.random()
        book = rng.choice(book_ids)
        word = rng.choice(WORDS)
        if roll < 0.30:
            pages = ["/api/books/", f"/api/books/{book}/", "/books/", f"/books/{book}/",
                     "/api/books/?ordering=price&availability=in_stock"]  # fmt: skip
            traffic.send("browse", "GET", rng.choice(pages))
        elif roll < 0.45:
            traffic.send(
                "search", "GET", rng.choice([f"/api/books/?q={word}", f"/books/?q={word}"])
            )
        elif roll < 0.55:
            traffic.send("my orders", "GET", "/api/orders/", token=token)
        elif roll < 0.70:
            lines = [{"book_id": book, "quantity": rng.randint(1, 2)}]
            body = {"lines": lines, "shipping_address": "1 Load St", "card_number": card()}
            command("checkout", "checkout", body)
        else:
            lines = [{"book_id": b, "quantity": rng.randint(1, 3)}
                     for b in rng.sample(book_ids, rng.randint(1, 2))]  # fmt: skip
            status, placed = command("place order", "place-order",
                                     {"lines": lines, "shipping_address": "2 Load St"})  # fmt: skip
            if status != 201:
                continue
            order_id = placed["order_id"]
            if rng.random() < 0.6:
                command("pay", "pay-order", {"order_id": order_id, "card_number": card()})
            if rng.random() < 0.25:
                command("cancel", "cancel-order", {"order_id": order_id, "reason": "Changed mind"})


def staff(traffic: Traffic, token: str, book_ids: list[int], until: float) -> None:
    rng = random.Random(99)
    while time.monotonic() < until:
        book = rng.choice(book_ids)
        roll = rng.random()
        if roll < 0.4:
            price = str(Decimal(rng.randint(500, 4000)) / 100)
            traffic.send("change price", "POST", "/api/commands/change-price/", token=token,
                         body={"book_id": book, "price": price})  # fmt: skip
        elif roll < 0.8:
            traffic.send("receive stock", "POST", "/api/commands/receive-stock/", token=token,
                         body={"book_id": book, "quantity": rng.randint(1, 20)})  # fmt: skip
        else:
            traffic.send("adjust stock", "POST", "/api/commands/adjust-stock/", token=token,
                         body={"book_id": book, "change": rng.randint(-3, 3) or 1,
                               "reason": "count_correction"})  # fmt: skip
        time.sleep(0.05)


def stock_from_the_log(book_id: int) -> int:
    events = DomainEvent.objects.filter(aggregate_type="stock", aggregate_id=str(book_id))

    def total(event_type: str, field: str) -> int:
        rows = events.filter(event_type=event_type).values_list(f"payload__{field}", flat=True)
        return sum(rows)

    return (
        total("StockReceived", "quantity")
        + total("StockAdjusted", "change")
        - total("StockReserved", "quantity")
        + total("StockReleased", "quantity")
    )


def test_mixed_load_leaves_consistent_read_models_and_no_server_error(stack, report):
    stack.add_worker("worker2")
    authors = [add_author(name=f"Author {w.title()}") for w in WORDS]
    books = [
        stocked_book(on_hand=40, allow_backorder=i % 5 == 0, authors=[authors[i % len(WORDS)]],
                     title=f"The {WORDS[i % len(WORDS)].title()} of {WORDS[(i * 3) % len(WORDS)]}")
        for i in range(30)
    ]  # fmt: skip
    book_ids = [book.pk for book in books]
    tokens = [Token.objects.create(user=UserFactory()).key for _ in range(CUSTOMERS)]
    boss = get_user_model().objects.create_superuser("load-staff", "l@example.com", "pw")
    staff_token = Token.objects.create(user=boss).key
    wait_until_caught_up()

    traffic = Traffic(stack.url)
    began = time.monotonic()
    until = began + LOAD_SECONDS
    threads = [
        threading.Thread(target=customer, args=(traffic, token, book_ids, n, until))
        for n, token in enumerate(tokens)
    ]
    threads.append(threading.Thread(target=staff, args=(traffic, staff_token, book_ids, until)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    caught_up = wait_until_caught_up(timeout=120)

    server_errors = traffic.count(lambda action, status: status >= 500)
    assert server_errors == 0, traffic.statuses
    assert traffic.count(lambda action, status: status in (200, 201) and action == "checkout")
    differences = audit()
    assert differences == [], differences[:5]
    for book_id in book_ids:
        on_hand = StockItem.objects.get(book_id=book_id).on_hand
        assert on_hand == stock_from_the_log(book_id), book_id
        assert on_hand >= 0
    stack.stop_workers()
    rebuilt = differences_from_a_fresh_rebuild()
    assert rebuilt == {}

    requests = sum(traffic.statuses.values())
    by_action = Counter()
    for (action, _status), n in traffic.statuses.items():
        by_action[action] += n
    report(
        "mixed load",
        seconds=round(elapsed, 1),
        requests=requests,
        requests_per_second=round(requests / elapsed, 1),
        orders=Order.objects.count(),
        paid=Order.objects.filter(payments__status="approved").distinct().count(),
        cancelled=Order.objects.filter(status="cancelled").count(),
        events=DomainEvent.objects.count(),
        refused_4xx=traffic.count(lambda action, status: 400 <= status < 500),
        server_errors_5xx=server_errors,
        audit_differences=len(differences),
        rows_differing_from_rebuild=sum(rebuilt.values()),
        caught_up_after_load_seconds=round(caught_up, 2),
        by_action=dict(by_action),
    )
