"""Log lines trace a command through every process by its correlation id (apps/cqrs/logs.py)."""

import json
import logging
import uuid

import pytest
import redis
from django.conf import settings

from apps.cqrs.context import scope
from apps.cqrs.models import DomainEvent
from apps.cqrs.projectors import registry
from apps.write.orders import services
from apps.write.orders.models import Order
from tests.conftest import wait_for
from tests.factories import DECLINE, UserFactory, place_order, stocked_book
from tests.processes import start_worker, subprocess_env


def json_lines(text: str) -> list[dict]:
    """Every line the JSON formatter wrote (Celery's banner on stdout is plain text)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True, databases=["default", "read"])
def test_the_worker_logs_each_event_with_the_correlation_id_of_its_command(tmp_path, caplog):
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    worker = start_worker(
        env={**subprocess_env(), "LOG_FORMAT": "json"}, logdir=tmp_path, name="json-logs"
    )
    correlation_id = uuid.uuid4()
    customer = UserFactory()
    try:
        with (
            caplog.at_level(logging.INFO, logger="cqrs.events"),
            scope(correlation_id=correlation_id),
        ):
            order = place_order(customer, (stocked_book(on_hand=3), 1))
            services.order_pay(actor=customer, order_id=order.pk, card_number=DECLINE)

        def compensated_and_logged():
            """the worker cancelled the order and logged its own event"""
            cancelled = Order.objects.get(pk=order.pk).status == Order.Status.CANCELLED
            return cancelled and '"OrderCancelled' in worker.log()

        wait_for(compensated_and_logged, timeout=20)
        # The projectors apply the cancellation a moment after it is recorded.
        traced = DomainEvent.objects.filter(correlation_id=correlation_id)

        def every_event_applied():
            """a line per event of the command's correlation, from a projector"""
            applied = {
                line["position"]
                for line in json_lines(worker.log())
                if line["message"].startswith("event applied")
                and line["correlation_id"] == str(correlation_id)
            }
            return applied == {e.position for e in traced if registry.interested_in([e.event_type])}

        wait_for(every_event_applied, timeout=20)
    finally:
        worker.stop()

    lines = json_lines(worker.log())
    assert lines, "the worker wrote no JSON lines"
    ours = [line for line in lines if line.get("correlation_id") == str(correlation_id)]
    # Each line names its projector, command and actor, in the worker's process
    applied = [line for line in ours if line["message"].startswith("event applied")]
    assert all(line["projector"] and line["command"] and line["actor"] for line in applied)
    assert {line["command"] for line in applied} >= {"orders.place", "orders.pay"}
    # The compensation's own event, recorded in the worker, is traced to the decline it follows
    declined = traced.get(event_type="PaymentDeclined")
    recorded = [line for line in ours if line["message"].startswith("event recorded")]
    assert {(line["event_type"], line["causation_id"], line["actor"]) for line in recorded} == {
        ("OrderCancelled", str(declined.event_id), "system:payment-compensation"),
        ("StockReleased", str(declined.event_id), "system:payment-compensation"),
    }
    # The web side (here, the test process) logged the customer's events when they committed
    web = {
        r.event_type: (r.correlation_id, r.actor, r.command)
        for r in caplog.records
        if r.getMessage().startswith("event recorded")
    }
    assert web["OrderPlaced"] == (str(correlation_id), customer.get_username(), "orders.place")
    assert web["PaymentDeclined"] == (str(correlation_id), customer.get_username(), "orders.pay")
