"""Wake-ups after commit: one queued catch-up per slot at a time."""

import base64
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import redis
from django.conf import settings
from django.core.cache import cache as django_cache
from django.test import override_settings

from apps.cqrs import dispatch, runtime
from apps.cqrs.consistency import HEAD_CACHE_KEY
from apps.cqrs.models import DomainEvent
from apps.cqrs.projectors import key_partition, registry
from apps.cqrs.tasks import project_slot
from apps.read.orders.models import OrderSummary
from apps.write.orders import services as orders
from tests.factories import (
    APPROVE,
    UserFactory,
    add_author,
    add_book,
    place_order,
    stocked_book,
)

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "read"])


def queued_messages(queue: str = "projections") -> list[dict]:
    """A queue's messages, oldest first (kombu pushes on the left)."""
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    return [json.loads(m) for m in reversed(broker.lrange(queue, 0, -1))]


def queued_catch_ups(queue: str = "projections") -> list[list]:
    """The arguments of the slot catch-ups queued for a queue."""
    return [json.loads(base64.b64decode(m["body"]))[0] for m in queued_messages(queue)]


def queued_etas() -> list[datetime | None]:
    """When each queued catch-up is to start; None for at once."""
    etas = [m["headers"]["eta"] for m in queued_messages()]
    return [datetime.fromisoformat(eta) if eta else None for eta in etas]


def test_commands_in_a_row_queue_one_catch_up_per_slot_until_it_starts():
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    author = add_author()
    for i in range(5):
        add_book(title=f"Book {i}", authors=[author])

    queued = queued_catch_ups()
    assert [args[:2] for args in queued] == [["projections", 0]]
    assert "catalog.book_listing" in queued[0][2]

    # Once the queued catch-up has started, the next command queues another.
    project_slot.run(*queued[0])
    add_book(title="After the catch-up", authors=[author])
    assert len(queued_catch_ups()) == 2


def test_a_queued_catch_up_runs_the_projectors_later_commands_woke():
    """A command whose slot already has a catch-up queued adds its projectors to that one's:
    without that, they would wait for the sweep. Every command wakes every read model, so
    subscribers, woken by the events they handle only, show it."""
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    book = stocked_book(on_hand=5)  # stock received: the back-order subscriber
    (args,) = queued_catch_ups("side-effects")
    assert "orders.emails" not in args[2]
    place_order(UserFactory(), (book, 1))
    assert len(queued_catch_ups("side-effects")) == 1  # joined the queued one

    project_slot.run(*args)
    emails = registry.get("orders.emails")
    assert runtime.status([emails])[0].lag_events == 0


def test_a_slot_woken_within_its_interval_of_the_last_start_waits_for_the_rest_of_it():
    """Under a stream of commands a slot starts one task per interval, each covering every
    command since the last; a slot idle for longer starts at once."""
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    author = add_author()
    add_book(title="First", authors=[author])
    assert queued_etas() == [None]  # an idle slot starts at once

    with override_settings(CQRS_WAKE_INTERVALS={"projections": 30}):
        project_slot.run(*queued_catch_ups()[0])
    started = datetime.now(UTC)
    add_book(title="Second", authors=[author])
    add_book(title="Third", authors=[author])
    etas = queued_etas()
    assert len(etas) == 2  # the second command joined the task the first queued
    second = etas[1]
    assert second is not None  # which starts when the interval ends
    assert started + timedelta(seconds=25) < second <= started + timedelta(seconds=30)

    with override_settings(CQRS_WAKE_INTERVALS={"projections": 0.05}):
        project_slot.run(*queued_catch_ups()[1])
    time.sleep(0.1)
    add_book(title="Fourth", authors=[author])
    assert queued_etas()[2:] == [None]


def test_the_head_noted_in_the_cache_only_moves_forward():
    # Commits announce their positions in whatever order their hooks run.
    django_cache.delete(HEAD_CACHE_KEY)
    for position in [5, 9, 7]:
        dispatch.wake_slots({}, head=position)
    assert django_cache.get(HEAD_CACHE_KEY) == 9
    dispatch.wake_slots({("projections", 0): ["catalog.book_listing"]}, head=12)
    assert django_cache.get(HEAD_CACHE_KEY) == 12


def test_an_order_wakes_the_history_partition_it_went_to_and_both_pass_it():
    """The history has two partitions, by customer: an order wakes the slot of its customer's,
    whose task moves the other one along, since nothing of the other's is in the log."""
    book = stocked_book(on_hand=5)
    history = registry.get("orders.history")
    for slot in registry.slots():
        project_slot.run(*slot)
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    customer = UserFactory()
    mine = key_partition(str(customer.pk), history.partitions)

    order = place_order(customer, (book, 1))

    woken = [args for args in queued_catch_ups() if "orders.history" in args[2]]
    assert [args[1] for args in woken] == [mine]
    for args in queued_catch_ups():
        project_slot.run(*args)
    head = runtime.head_position()
    assert {cp.position for cp in runtime.status([history])} == {head}
    assert OrderSummary.objects.filter(order_id=order.pk).exists()


def test_a_command_moves_every_read_model_past_it_even_those_it_does_not_concern():
    """A client may send a command's position to any read, which waits until that read model
    has passed it: a payment's position to the catalog, which has nothing of a payment to
    apply. The payment's wake-ups move every read model past it, not the sweep."""
    book = stocked_book(on_hand=5)
    customer = UserFactory()
    order = place_order(customer, (book, 1))
    for slot in registry.slots():
        project_slot.run(*slot)
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    before = runtime.head_position()

    orders.order_pay(actor=customer, order_id=order.pk, card_number=APPROVE)

    head = runtime.head_position()
    paid = DomainEvent.objects.filter(position__gt=before).values_list("event_type", flat=True)
    assert registry.get("catalog.book_listing") not in registry.interested_in(paid)
    for args in queued_catch_ups():
        project_slot.run(*args)
    read_models = registry.replayable()
    assert {cp.name: cp.position for cp in runtime.status(read_models)} == {
        part.name: head for p in read_models for part in p.partition_list()
    }
