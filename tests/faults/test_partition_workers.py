"""The order history projected by two real Celery workers, one per partition, while one of
them is killed mid-batch: nothing is lost or applied twice, and the tables equal a replay by a
single runner."""

import time

import pytest
import redis
from django.conf import settings

from apps.cqrs import runtime
from apps.cqrs.models import ProjectorCheckpoint
from apps.cqrs.projectors import registry
from apps.read.orders.models import OrderSummary
from apps.write.demo.order_events import copy_order_events
from tests.conftest import wait_for
from tests.faults.conftest import read_model_rows
from tests.processes import start_worker, subprocess_env

pytestmark = [
    pytest.mark.faults,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True, databases=["default", "read"]),
]
ORDERS = 10_000  # 20,000 events: a few seconds of projection, so the kill lands mid-batch
HISTORY = "orders.history"


def history_positions() -> dict[str, int]:
    return dict(
        ProjectorCheckpoint.objects.filter(name__startswith=f"{HISTORY}[").values_list(
            "name", "position"
        )
    )


def history_rows() -> tuple[set[str], set[str]]:
    rows = read_model_rows()
    return rows["read_orders.OrderSummary"], rows["read_orders.CustomerTotals"]


def test_killing_one_of_two_partition_workers_mid_batch_loses_nothing(tmp_path, report):
    # Given a log of order events, and two workers of one process each on the read models'
    # queue (no side effects: these orders have no rows behind them)
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    history = registry.get(HISTORY)
    env = subprocess_env()
    began = time.monotonic()
    workers = [
        start_worker(env=env, logdir=tmp_path, name=name, beat=beat, concurrency=1,
                     queues="projections")
        for name, beat in (("first", True), ("second", False))
    ]  # fmt: skip
    try:
        # COPY sends no wake-up: beat's sweep starts both partitions within a second
        events = copy_order_events(orders=ORDERS)
        head = runtime.head_position()
        # When both partitions are under way, one worker is killed, and another takes its place
        wait_for(
            lambda: (p := history_positions()) and all(0 < v < head for v in p.values()),
            timeout=30,
            interval=0.02,
        )
        before_kill = history_positions()
        workers[0].kill()
        killed_at = time.monotonic()
        workers.append(
            start_worker(env=env, logdir=tmp_path, name="third", beat=True, concurrency=1,
                         queues="projections")
        )  # fmt: skip

        def caught_up():
            """both partitions of the order history have reached the head of the log"""
            positions = history_positions()
            return len(positions) == 2 and all(p >= head for p in positions.values())

        wait_for(caught_up, timeout=120, interval=0.2)
        elapsed = time.monotonic() - began
    finally:
        for worker in workers:
            worker.stop()

    # Then every order is there once, and the tables equal a single runner's replay
    assert OrderSummary.objects.count() == ORDERS
    assert min(before_kill.values()) < head  # the kill came before the end
    live = history_rows()
    runtime.rebuild(history)
    assert history_rows() == live
    report(
        "partition workers",
        events=events,
        partitions=history.partitions,
        killed_after_s=round(killed_at - began, 1),
        checkpoints_at_kill=sorted(before_kill.values()),
        seconds_to_head_with_worker_starts=round(elapsed, 1),
    )
