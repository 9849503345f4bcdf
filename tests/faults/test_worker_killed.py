"""A worker host dies in the middle of a large batch: the new worker finishes the job, and the
read models equal a fresh rebuild (no event lost, none applied twice)."""

import time

import pytest
from django.core.management import call_command

from apps.cqrs import runtime
from apps.cqrs.models import DomainEvent, ProjectorCheckpoint
from apps.read.catalog.models import BookListing
from apps.read.reports.models import StockLevel
from apps.write.catalog.models import Book
from apps.write.inventory.models import StockItem
from tests.conftest import wait_for, wait_until_caught_up
from tests.faults.conftest import differences_from_a_fresh_rebuild

pytestmark = [
    pytest.mark.faults,
    pytest.mark.django_db(transaction=True, databases=["default", "read"]),
]
BOOKS = 20_000


def listing_position() -> int:
    return ProjectorCheckpoint.objects.filter(name="catalog.book_listing").values_list(
        "position", flat=True
    ).first() or 0  # fmt: skip


def test_a_worker_killed_mid_batch_loses_nothing_and_applies_nothing_twice(stack, report):
    # Given a large log the worker is projecting (the bulk seed sends no wake-up: the sweep
    # finds it within a second)
    call_command("bulk_seed_catalog", books=BOOKS, verbosity=0)
    head = runtime.head_position()

    def projecting():
        """the listing projector is part-way through the log"""
        return 0 < listing_position() < head

    wait_for(projecting, timeout=30, interval=0.02)

    # When the worker and its pool processes are killed at once, and a new worker starts
    stack.workers[0].kill()
    killed_at = listing_position()
    started = time.monotonic()
    stack.add_worker("replacement", beat=True)
    recovery = wait_until_caught_up(timeout=120)
    recovery_total = time.monotonic() - started

    # Then every book is listed once, stock levels equal the write model, and the read models
    # equal a replay of the log
    assert BookListing.objects.count() == Book.objects.count() == BOOKS
    on_hand = dict(StockItem.objects.values_list("book_id", "on_hand"))
    assert dict(StockLevel.objects.values_list("book_id", "on_hand")) == on_hand
    stack.stop_workers()
    differences = differences_from_a_fresh_rebuild()
    assert differences == {}
    report(
        "worker killed",
        events=DomainEvent.objects.count(),
        listing_events_applied_before_kill=DomainEvent.objects.filter(
            position__lte=killed_at
        ).count(),
        rows_differing_from_rebuild=sum(differences.values()),
        recovery_seconds=round(recovery_total, 2),
        caught_up_after_start_seconds=round(recovery, 2),
    )
