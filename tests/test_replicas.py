"""Queries from a real streaming replica (apps/cqrs/replicas.py): read-your-writes stays exact,
a lagging or stopped replica leaves the rotation, and the cache never runs ahead of it."""

import json
import urllib.error
import urllib.request
from decimal import Decimal

import pytest
import redis
from django.conf import settings
from django.db import connections
from rest_framework.authtoken.models import Token

from apps.cqrs.consistency import read_position
from apps.cqrs.models import DomainEvent
from apps.cqrs.projectors import registry
from apps.cqrs.replicas import reading_from
from apps.read.catalog.models import BookListing
from apps.write.catalog import services as catalog
from config.db_router import ReadWriteRouter
from tests.conftest import wait_for
from tests.factories import StaffFactory, UserFactory, stocked_book
from tests.processes import start_web, start_worker, subprocess_env
from tests.replica import StreamingReplica

pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True, databases=["default", "read"]),
]


def http(url: str, *, token: str | None = None, body: dict | None = None,
         headers: dict | None = None) -> tuple[int, dict, dict]:  # fmt: skip
    request = urllib.request.Request(url, method="POST" if body is not None else "GET")
    request.add_header("Accept", "application/json")
    if token:
        request.add_header("Authorization", f"Token {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    data = json.dumps(body).encode() if body is not None else None
    if data:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, data=data, timeout=15) as response:
            status, headers, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, headers, raw = error.code, dict(error.headers), error.read()
    is_json = headers.get("Content-Type", "").startswith("application/json")
    return status, headers, json.loads(raw) if is_json else {}


def metric(url: str, name: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


@pytest.fixture(scope="module")
def replica(django_db_setup):
    # One base backup for the module (about 15 s each): every test leaves it streaming and
    # replaying, as it found it.
    replica = StreamingReplica()
    yield replica
    replica.destroy()


@pytest.fixture
def shop(replica, tmp_path, collected_static):
    """A worker on the primary, and gunicorn reading queries from the replica."""
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    env = subprocess_env()
    worker = start_worker(env=env, logdir=tmp_path)
    read_database = connections["read"].settings_dict["NAME"]
    web = start_web(
        env={
            **env,
            "READ_REPLICA_URLS": replica.url(read_database),
            "CQRS_READ_WAIT_SECONDS": "1",
            "READ_REPLICA_MAX_LAG_SECONDS": "3",
            "READ_REPLICA_CHECK_SECONDS": "0.2",
        },
        logdir=tmp_path,
    )
    try:
        yield web
    finally:
        web.kill()
        worker.kill()


def place(shop, token: str, book_id: int) -> dict:
    status, _, order = http(f"{shop.url}/api/commands/place-order/", token=token,
                            body={"lines": [{"book_id": book_id, "quantity": 1}],
                                  "shipping_address": "1 Elm Street"})  # fmt: skip
    assert status == 201, order
    return order


def test_a_customer_reads_their_new_order_through_the_replica(shop, replica):
    book = stocked_book(on_hand=20)
    token = Token.objects.create(user=UserFactory()).key
    order = place(shop, token, book.pk)

    status, headers, body = http(
        f"{shop.url}/api/orders/{order['order_id']}/",
        token=token,
        headers={"X-Min-Position": str(order["position"])},
    )
    assert status == 200
    assert body["status"] == "placed"
    assert headers["X-Read-Consistency"] == "fresh"
    assert int(headers["X-Read-Position"]) >= order["position"]
    # The replica answered: nothing fell back to the primary
    assert metric(shop.url, "bookstore_replica_fallbacks_total") == 0
    assert metric(shop.url, 'bookstore_replica_up{replica="replica0"}') == 1


def test_with_replay_paused_reads_fall_back_then_the_replica_leaves_the_rotation(shop, replica):
    book = stocked_book(on_hand=20)
    customer = UserFactory()
    token = Token.objects.create(user=customer).key
    first = place(shop, token, book.pk)

    def first_projected():
        """every partition of the order history has passed the first order on the primary"""
        return read_position([registry.get("orders.history")]) >= first["position"]

    wait_for(first_projected)
    replica.wait_caught_up()
    replica.pause()
    try:
        second = place(shop, token, book.pk)

        # A read without a position is the replica's: it has not seen the second order yet,
        # and says so by its position
        status, headers, body = http(f"{shop.url}/api/orders/", token=token)
        assert status == 200
        assert [o["id"] for o in body["results"]] == [first["order_id"]]
        assert first["position"] <= int(headers["X-Read-Position"]) < second["position"]

        # With the position, it waits for the replica (1 s), then reads the primary: exact
        wait = {"X-Min-Position": str(second["position"])}
        status, headers, body = http(f"{shop.url}/api/orders/", token=token, headers=wait)
        assert status == 200
        assert {o["id"] for o in body["results"]} == {first["order_id"], second["order_id"]}
        assert headers["X-Read-Consistency"] == "fresh"
        assert metric(shop.url, "bookstore_replica_fallbacks_total") >= 1

        # Replay stays paused past READ_REPLICA_MAX_LAG_SECONDS (3): out of the rotation, so
        # plain reads go to the primary, and /readyz says why (and stays ready)
        def out_of_rotation():
            """a read without a position sees the second order"""
            _, _, listed = http(f"{shop.url}/api/orders/", token=token)
            return len(listed["results"]) == 2

        wait_for(out_of_rotation, timeout=20)
        status, _, ready = http(f"{shop.url}/readyz")
        assert status == 200
        assert ready["replicas"]["replica0"].startswith("lagging")
    finally:
        replica.resume()
    replica.wait_caught_up()
    wait_for(lambda: http(f"{shop.url}/readyz")[2]["replicas"] == {"replica0": "ok"}, timeout=20)


def test_a_stopped_replica_leaves_the_rotation_and_reads_go_on(shop, replica):
    book = stocked_book(on_hand=20)

    def projected():
        """the worker has listed the book (reads that come before it are a 404, whatever
        the replica)"""
        return BookListing.objects.filter(book_id=book.pk).exists()

    wait_for(projected, timeout=20)
    replica.stop()
    try:
        statuses = [http(f"{shop.url}/api/books/{book.pk}/")[0] for _ in range(20)]
        statuses += [http(f"{shop.url}/books/")[0] for _ in range(5)]
        assert statuses == [200] * 25
        status, _, ready = http(f"{shop.url}/readyz")
        assert (status, ready["replicas"]) == (200, {"replica0": "unavailable"})
        assert metric(shop.url, 'bookstore_replica_up{replica="replica0"}') == 0
    finally:
        replica.start()
    wait_for(lambda: http(f"{shop.url}/readyz")[2]["replicas"] == {"replica0": "ok"}, timeout=20)


def test_the_cache_never_answers_a_replica_read_with_newer_data(shop, replica):
    book = stocked_book(on_hand=20, price="10.00")
    staff = StaffFactory()
    # Warm the cache from the primary's projector, and let the replica catch up
    wait_for(lambda: BookListing.objects.filter(pk=book.pk, price="10.00").exists())
    replica.wait_caught_up()
    replica.pause()
    try:
        catalog.book_change_price(actor=staff, book_id=book.pk, price=Decimal("12.00"))
        wait_for(lambda: BookListing.objects.filter(pk=book.pk, price="12.00").exists())
        # The projector has written the new price to the cache; the replica still has 10.00
        status, headers, body = http(f"{shop.url}/api/books/{book.pk}/")
        assert (status, body["price"]) == (200, "10.00")
        changed = DomainEvent.objects.filter(event_type="PriceChanged").latest("position")
        assert int(headers["X-Read-Position"]) < changed.position
    finally:
        replica.resume()
    replica.wait_caught_up()

    def new_price():
        """the replica serves the new price"""
        return http(f"{shop.url}/api/books/{book.pk}/")[2]["price"] == "12.00"

    wait_for(new_price, timeout=10)


def test_reads_of_a_query_may_go_to_a_replica_and_writes_never_do():
    router = ReadWriteRouter()
    with reading_from("replica0"):
        assert router.db_for_read(BookListing) == "replica0"
        assert router.db_for_write(BookListing) == "read"
    assert router.db_for_read(BookListing) == "read"
