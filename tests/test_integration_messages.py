"""Integration messages on the real RabbitMQ (127.0.0.1:5672): the relay publishes the chosen
events with publisher confirms, at least once and in order per aggregate; the example consumer
drops repeats by message id and dead-letters what it cannot read."""

import os
import subprocess
import threading
import time
import uuid
from collections import defaultdict
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connections
from kombu import Connection, Exchange

from apps.cqrs import runtime
from apps.cqrs.models import DomainEvent, SubscriberCheckpoint
from apps.integration.management.commands.consume_integration_events import queues
from apps.integration.messages import routing_key
from apps.integration.models import ReceivedMessage
from apps.integration.subscribers import IntegrationRelay
from apps.write.orders import services
from tests.conftest import wait_for
from tests.factories import APPROVE, WAREHOUSE, UserFactory, place_order, stocked_book
from tests.projectors import registered

BROKER = os.environ.get("INTEGRATION_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "read"])


@pytest.fixture
def relay(settings):
    settings.INTEGRATION_BROKER_URL = BROKER
    settings.INTEGRATION_EXCHANGE = f"test-{uuid.uuid4().hex[:8]}"
    queue = f"{settings.INTEGRATION_EXCHANGE}.consumer"
    main, dead = queues(queue, ["orders.#"])
    with Connection(BROKER) as connection:
        channel = connection.channel()
        dead(channel).declare()
        main(channel).declare()  # bound before anything is published
    with registered(IntegrationRelay()) as projector:
        projector.queue_name = queue
        yield projector
        projector.publisher.close()
    with Connection(BROKER) as connection:
        channel = connection.channel()
        for name in (queue, f"{queue}.dead-letter"):
            channel.queue_delete(name)
        for name in (settings.INTEGRATION_EXCHANGE, f"{settings.INTEGRATION_EXCHANGE}.dead-letter"):
            channel.exchange_delete(name)


def consume(relay, idle: float = 1.5) -> str:
    return call_command_output(
        "consume_integration_events", queue=relay.queue_name, idle_seconds=idle
    )


def call_command_output(*args, **kwargs) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO(), **kwargs)
    return out.getvalue()


def order_events() -> list[DomainEvent]:
    published = IntegrationRelay.handles
    return list(
        DomainEvent.objects.filter(aggregate_type="order", event_type__in=published).order_by(
            "position"
        )
    )


def test_routing_keys_name_context_aggregate_and_event():
    assert routing_key("OrderPlaced") == "orders.order.placed"
    assert routing_key("PaymentRefunded") == "orders.order.payment_refunded"
    assert routing_key("PriceChanged") == "catalog.book.price_changed"


def test_every_order_change_reaches_the_consumer_once_in_effect(relay):
    customer = UserFactory()
    shipped = place_order(customer, (stocked_book(on_hand=9), 1))
    services.order_pay(actor=customer, order_id=shipped.pk, card_number=APPROVE)
    services.order_ship(actor=WAREHOUSE, order_id=shipped.pk)
    cancelled = place_order(customer, (stocked_book(on_hand=9), 2))
    services.order_pay(actor=customer, order_id=cancelled.pk, card_number=APPROVE)
    services.order_cancel(actor=customer, order_id=cancelled.pk)
    place_order(customer, (stocked_book(on_hand=9), 1))

    runtime.catch_up(relay)
    # A relay that is made to publish everything again (as after a crash between the broker's
    # confirm and its checkpoint's commit) only repeats: the consumer drops the repeats
    SubscriberCheckpoint.objects.filter(name=relay.name).update(position=0)
    runtime.catch_up(relay)
    output = consume(relay)

    expected = order_events()
    assert {e.event_type for e in expected} >= {
        "OrderPlaced", "OrderPaid", "OrderShipped", "OrderCancelled", "PaymentRefunded"
    }  # fmt: skip
    received = list(ReceivedMessage.objects.order_by("received_at", "position"))
    assert sorted(r.message_id for r in received) == sorted(str(e.event_id) for e in expected)
    assert f"{len(expected)} handled, {len(expected)} repeats dropped, 0 dead-lettered" in output
    assert_in_order_per_order(received)


def assert_in_order_per_order(received: list[ReceivedMessage]) -> None:
    positions = defaultdict(list)
    for message in received:
        positions[message.aggregate_id].append(message.position)
    assert all(p == sorted(p) for p in positions.values()), positions


def test_a_message_the_consumer_cannot_read_is_dead_lettered_not_looped(relay, settings):
    with Connection(BROKER) as connection:
        producer = connection.Producer()
        exchange = Exchange(settings.INTEGRATION_EXCHANGE, type="topic", durable=True)
        producer.publish(
            b"{not json", exchange=exchange, routing_key="orders.order.placed",
            content_type="application/json", content_encoding="utf-8",
            message_id=str(uuid.uuid4()), declare=[exchange],
        )  # fmt: skip
    output = consume(relay, idle=1.0)
    assert "0 handled, 0 repeats dropped, 1 dead-lettered" in output
    with Connection(BROKER) as connection:
        channel = connection.channel()
        _, waiting, _ = channel.queue_declare(relay.queue_name, passive=True)
        _, dead, _ = channel.queue_declare(f"{relay.queue_name}.dead-letter", passive=True)
    assert (waiting, dead) == (0, 1)


@pytest.mark.faults
def test_with_the_broker_stopped_under_orders_nothing_is_lost_or_reordered(relay, report):
    customer = UserFactory()
    books = [stocked_book(on_hand=500) for _ in range(3)]
    stop = threading.Event()

    def place_and_pay() -> None:
        try:
            while not stop.is_set():
                order = place_order(customer, (books[len(order_events()) % 3], 1))
                services.order_pay(actor=customer, order_id=order.pk, card_number=APPROVE)
                time.sleep(0.05)
        finally:
            connections.close_all()

    def relay_loop() -> None:
        try:
            while not stop.is_set():
                runtime.catch_up(relay, force=True)  # as the sweep would, without its back-off
                time.sleep(0.2)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=place_and_pay), threading.Thread(target=relay_loop)]
    for thread in threads:
        thread.start()
    time.sleep(2)
    subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, timeout=60)
    down_at = time.monotonic()
    time.sleep(5)
    subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, timeout=60)
    down_seconds = time.monotonic() - down_at
    time.sleep(3)
    stop.set()
    for thread in threads:
        thread.join()
    wait_for(lambda: runtime.catch_up(relay, force=True).failed_position is None, timeout=30)
    consume(relay)

    expected = order_events()
    received = list(ReceivedMessage.objects.order_by("received_at", "position"))
    lost = {str(e.event_id) for e in expected} - {r.message_id for r in received}
    report(
        "integration broker down",
        down_seconds=round(down_seconds, 1),
        events=len(expected),
        received=len(received),
        lost=len(lost),
    )
    assert lost == set()
    assert_in_order_per_order(received)
    assert len(received) == len(expected)  # each once: the repeats were dropped
