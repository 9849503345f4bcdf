"""Waits and streams under the ASGI server production runs (gunicorn with uvicorn workers):
read-your-writes waits hold no worker and no database connection, and an order's status
changes stream as server-sent events, resumable by Last-Event-ID."""

import asyncio
import http.client
import json
import threading
import time
from decimal import Decimal
from email.message import Message
from urllib.parse import urlsplit

import psycopg
import pytest
from django.core.cache import cache
from django.db import connections
from django.urls import resolve
from rest_framework.authtoken.models import Token

from apps.cqrs import live, runtime
from apps.cqrs.asgi import _handoff, read_wait_of
from apps.cqrs.consistency import HANDOFF_HEADER, HEAD_CACHE_KEY, MIN_POSITION_HEADER, head_position
from apps.cqrs.models import DomainEvent, ProjectorCheckpoint
from apps.cqrs.projectors import registry
from apps.write.catalog import services as catalog
from apps.write.orders import services as orders
from tests.factories import APPROVE, WAREHOUSE, StaffFactory, UserFactory, place_order, stocked_book
from tests.processes import start_web, subprocess_env

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "read"])
WAIT_SECONDS = 8  # the server's read-your-writes bound: long enough to tell a wait from none
# The server's re-read of the checkpoints for pending waits, past WAIT_SECONDS: a wait ends by
# an announcement or not before its time is up.
REFRESH_SECONDS = 30


@pytest.fixture(scope="module")
def asgi_server(django_db_setup, django_db_blocker, tmp_path_factory):
    """One uvicorn worker whose pool has two connections per alias: a wait that held a thread
    and a connection would starve it at the third."""
    env = subprocess_env() | {
        "CQRS_READ_WAIT_SECONDS": str(WAIT_SECONDS),
        "CQRS_LIVE_REFRESH_SECONDS": str(REFRESH_SECONDS),
        "DATABASE_POOL_MAX_SIZE": "2",
    }
    with django_db_blocker.unblock():
        server = start_web(env=env, logdir=tmp_path_factory.mktemp("asgi"), workers=1, asgi=True)
    yield server
    server.stop()


def get(
    url: str, *, headers: dict | None = None, timeout: float = 30
) -> tuple[int, Message, bytes]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request("GET", f"{parts.path}?{parts.query}", headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def project(name: str) -> None:
    runtime.catch_up(registry.get(name))


def test_waiting_reads_hold_no_worker_and_no_connection(asgi_server):
    book = stocked_book()
    project("catalog.book_listing")
    staff = StaffFactory()
    token = Token.objects.create(user=UserFactory()).key
    # The listing cannot move while this transaction holds its checkpoints (runners skip a
    # locked checkpoint): the position below stays unreached until the test lets go.
    db = connections["read"].settings_dict
    with psycopg.connect(
        dbname=db["NAME"], user=db["USER"], host=db["HOST"], port=db["PORT"] or 5432
    ) as holder:
        holder.execute(
            f"SELECT 1 FROM {ProjectorCheckpoint._meta.db_table} WHERE name LIKE %s FOR UPDATE",
            ["catalog.book_listing%"],
        )
        catalog.book_change_price(actor=staff, book_id=book.pk, price=Decimal("11.00"))
        position = head_position()

        waits: list[tuple[int, Message]] = []

        def wait() -> None:
            url = f"{asgi_server.url}/api/books/{book.pk}/?min_position={position}"
            status, headers, _ = get(url)
            waits.append((status, headers))

        waiters = [threading.Thread(target=wait, daemon=True) for _ in range(20)]
        for thread in waiters:
            thread.start()
        time.sleep(0.5)  # all 20 are in, waiting

        # Reads that use the database (a token, a customer's orders) answer meanwhile.
        started = time.monotonic()
        others = [
            get(f"{asgi_server.url}/api/orders/", headers={"Authorization": f"Token {token}"})[0]
            for _ in range(10)
        ]
        print(f"\n10 other reads behind 20 waits: {time.monotonic() - started:.2f} s")
        assert others == [200] * 10
        assert waits == []
        assert all(thread.is_alive() for thread in waiters)
        holder.rollback()

    project("catalog.book_listing")  # announces the batch: the waits end at once
    for thread in waiters:
        thread.join(timeout=WAIT_SECONDS)
    assert len(waits) == 20
    assert {status for status, _ in waits} == {200}
    assert {headers["X-Read-Consistency"] for _, headers in waits} == {"fresh"}
    assert all(int(headers["X-Read-Position"]) >= position for _, headers in waits)


def test_a_wait_ends_when_the_partitions_without_events_move_past_it(asgi_server):
    """An order's events go to one partition of the order history, and a wake-up runs that
    partition's slot only, which moves the other partition along (runtime.catch_up_together).
    A read of the order waits for both: it ends when the slot's batch commits, not when the
    hub next re-reads the checkpoints."""
    history = registry.get("orders.history")
    assert history.partitions > 1
    customer = UserFactory()
    token = Token.objects.create(user=customer).key
    order = place_order(customer, (stocked_book(), 1))
    for projector in registry.replayable():
        project(projector.name)
    # A second order, with nothing projected yet: what the read below waits for.
    order = place_order(customer, (stocked_book(), 1))
    position = head_position()
    placed = DomainEvent.objects.filter(event_type__in=history.handles).latest("position")
    slot = history.partition_of(placed).index

    answers: list[tuple[int, bytes]] = []

    def read() -> None:
        headers = {"Authorization": f"Token {token}", MIN_POSITION_HEADER: str(position)}
        answers.append(get(f"{asgi_server.url}/api/orders/{order.pk}/", headers=headers)[::2])

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.5)  # the read is in, waiting
    assert answers == []
    runtime.catch_up_together(registry.slot(history.queue, slot))
    committed = time.monotonic()
    reader.join(timeout=WAIT_SECONDS)
    waited = time.monotonic() - committed
    print(f"\nthe wait ended {waited * 1000:.0f} ms after the slot's batch")
    [(status, body)] = answers
    assert status == 200
    assert json.loads(body)["id"] == order.pk
    assert waited < WAIT_SECONDS / 2  # the announcement, not the wait's time-out


def test_behind_the_gateway_a_waited_read_is_handed_on_to_the_query_pool(asgi_server):
    book = stocked_book()
    project("catalog.book_listing")
    path = f"/api/books/{book.pk}/?min_position={head_position()}"

    # The gateway names its hand-off location: the read goes back to it once waited for.
    status, headers, body = get(f"{asgi_server.url}{path}", headers={HANDOFF_HEADER: "/_waited"})
    assert (status, headers["X-Accel-Redirect"], body) == (200, f"/_waited{path}", b"")
    # Without the gateway, the live pool serves it.
    status, headers, body = get(f"{asgi_server.url}{path}")
    assert (status, headers["X-Read-Consistency"]) == (200, "fresh")
    assert json.loads(body)["id"] == book.pk


def test_a_read_nginx_would_take_for_another_is_not_handed_on():
    def handoff(path: str, query: bytes = b"", prefix: bytes = b"/_waited") -> bytes | None:
        gateway = [(HANDOFF_HEADER.lower().encode(), prefix)]
        return _handoff({"path": path, "query_string": query, "headers": gateway})

    assert handoff("/orders/3/", b"after=12") == b"/_waited/orders/3/?after=12"
    assert handoff("/api/books/7/", b"q=%C3%A9&min_position=1") is not None  # as it came
    assert handoff("/api/books/a?b/") is None  # a decoded "?" would start the arguments
    assert handoff("/api/books/7/", b"q=\xc3\xa9 x") is None  # raw bytes: not for a header
    assert handoff("/api/books/7/", prefix=b"/\xff") is None  # a client's, not the gateway's


def test_a_position_beyond_the_head_is_refused_without_waiting(asgi_server):
    stocked_book()
    beyond = head_position() + 1000
    started = time.monotonic()
    status, _, body = get(f"{asgi_server.url}/api/books/?min_position={beyond}")
    assert status == 400
    assert "No event has position" in json.loads(body)["min_position"]
    assert time.monotonic() - started < WAIT_SECONDS  # answered, not waited out


def test_a_position_that_is_not_text_is_refused_not_a_server_error(asgi_server):
    status, _, body = get(f"{asgi_server.url}/api/books/", headers={MIN_POSITION_HEADER: "\xff"})
    assert status == 400
    assert "min_position" in json.loads(body)


class EventStream:
    """A client of one server-sent event stream, reading messages as they come."""

    def __init__(self, url: str, *, token: str, last_event_id: int | None = None) -> None:
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=15)
        headers = {"Authorization": f"Token {token}", "Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        self.connection.request("GET", parts.path, headers=headers)
        self.response = self.connection.getresponse()

    def next_message(self) -> dict:
        fields: dict = {}
        while True:
            raw = self.response.fp.readline()
            if not raw:
                raise EOFError(f"the stream ended ({self.response.status})")
            line = raw.decode().rstrip("\n")
            if line == "" and "data" in fields:
                return {"id": int(fields["id"]), **json.loads(fields["data"])}
            if line and not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value

    def close(self) -> None:
        self.connection.close()


def paid_order(customer):
    book = stocked_book(on_hand=3)
    order = place_order(customer, (book, 1))
    orders.order_pay(actor=customer, order_id=order.pk, card_number=APPROVE)
    project("orders.history")
    return order


def test_an_order_streams_its_status_changes_and_resumes_after_the_last_id(asgi_server):
    customer = UserFactory()
    token = Token.objects.create(user=customer).key
    order = paid_order(customer)
    url = f"{asgi_server.url}/api/orders/{order.pk}/events/"

    stream = EventStream(url, token=token)
    assert stream.response.status == 200
    assert stream.response.getheader("Content-Type") == "text/event-stream"
    placed, paid = stream.next_message(), stream.next_message()
    assert [placed["status"], paid["status"]] == ["placed", "paid"]
    assert placed["id"] < paid["id"]

    orders.order_ship(actor=WAREHOUSE, order_id=order.pk)
    project("orders.history")  # announces the batch: the stream wakes for this order
    shipped = stream.next_message()
    stream.close()
    assert (shipped["status"], shipped["order_id"]) == ("shipped", order.pk)

    # A reconnect after "paid" gets "shipped" and nothing before it.
    orders.order_deliver(actor=WAREHOUSE, order_id=order.pk)
    project("orders.history")
    resumed = EventStream(url, token=token, last_event_id=paid["id"])
    again, delivered = resumed.next_message(), resumed.next_message()
    resumed.close()
    assert (again["id"], again["status"]) == (shipped["id"], "shipped")
    assert delivered["status"] == "delivered"
    assert delivered["id"] > shipped["id"]


def test_open_streams_hold_no_database_connection(asgi_server):
    customer = UserFactory()
    token = Token.objects.create(user=customer).key
    order = paid_order(customer)
    url = f"{asgi_server.url}/api/orders/{order.pk}/events/"
    # Twice as many streams as the server's pool has connections (2 per alias).
    streams = [EventStream(url, token=token) for _ in range(4)]
    try:
        assert [s.next_message()["status"] for s in streams] == ["placed"] * 4
        status, _, _ = get(
            f"{asgi_server.url}/api/orders/", headers={"Authorization": f"Token {token}"}
        )
        assert status == 200
    finally:
        for stream in streams:
            stream.close()


def test_only_the_customer_and_staff_may_follow_an_order(asgi_server):
    customer, stranger = UserFactory(), UserFactory()
    order = paid_order(customer)
    url = f"{asgi_server.url}/api/orders/{order.pk}/events/"
    for user, expected in [(stranger, 404), (StaffFactory(), 200), (customer, 200)]:
        stream = EventStream(url, token=Token.objects.create(user=user).key)
        assert stream.response.status == expected, user
        stream.close()
    assert get(url)[0] in {401, 403}
    bad = {"Authorization": f"Token {Token.objects.get(user=customer).key}"}
    status, _, body = get(f"{url}?last_event_id=-3", headers=bad)
    assert status == 400
    assert b"last_event_id" in body


def test_the_stream_under_wsgi_sends_the_timeline_and_ends(client):
    """`make run` serves WSGI: the stream polls, and ends for the browser to reconnect."""
    customer = UserFactory()
    order = paid_order(customer)
    client.force_login(customer)
    response = client.get(f"/api/orders/{order.pk}/events/", HTTP_LAST_EVENT_ID="0")
    assert response.status_code == 200
    assert response.streaming
    chunks = iter(response.streaming_content)
    assert next(chunks).startswith(b"retry: ")
    assert b'"status": "placed"' in next(chunks)
    assert b'"status": "paid"' in next(chunks)
    response.close()


def test_every_view_that_waits_declares_what_it_waits_for():
    """The ASGI middleware finds a view's projectors from its URL, through the decorators."""
    page = read_wait_of(resolve("/orders/1/").func)
    assert (page.projector_names, page.parameter) == (("orders.history",), "after")
    api = read_wait_of(resolve("/api/books/").func)
    assert (api.projector_names, api.parameter) == (("catalog.book_listing",), "min_position")
    assert read_wait_of(resolve("/books/").func) is None


def test_a_hubs_first_read_of_a_checkpoint_keeps_what_it_heard_meanwhile(monkeypatch, settings):
    """A hub reads a partition's checkpoint the first time a wait names it, in a thread. A
    batch that commits and is announced while that read is on its way is newer than what the
    read brings back: the wait ends on it, not at the next re-read."""
    settings.CQRS_LIVE_REFRESH_SECONDS = 30
    stocked_book()
    for projector in registry.replayable():
        project(projector.name)
    listing = "catalog.book_listing"
    passed = runtime.status([registry.get(listing)])[0].position
    real_read = live.read_positions

    def read_overtaken(names, *, at_least=0):
        found = real_read(names, at_least=at_least)
        live.announce({listing: passed + 1})  # a batch commits meanwhile
        time.sleep(0.5)  # and is heard before this read returns
        return found

    async def scenario() -> tuple[bool, float]:
        hub = live.Hub()
        # Subscribed, and knowing the order history's partitions but not the listing's.
        await hub.wait(projector_names=["orders.history"], min_position=0, timeout=1)
        while not hub._subscribed:
            await asyncio.sleep(0.01)
        monkeypatch.setattr(live, "read_positions", read_overtaken)
        started = time.monotonic()
        reached, _ = await hub.wait(
            projector_names=[listing], min_position=passed + 1, timeout=WAIT_SECONDS
        )
        return reached, time.monotonic() - started

    cache.set(HEAD_CACHE_KEY, passed + 1)
    # A loop of its own, in a thread of its own: earlier tests (the browser's) may leave one
    # running in this thread.
    results: list[tuple[bool, float]] = []
    runner = threading.Thread(target=lambda: results.append(asyncio.run(scenario())))
    runner.start()
    runner.join()
    [(reached, waited)] = results
    assert reached
    assert waited < WAIT_SECONDS / 2
