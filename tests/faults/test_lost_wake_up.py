"""The process dies between its commit and the wake-up: the beat sweep delivers the event."""

import subprocess
import sys
import time

import pytest

from apps.cqrs.models import DomainEvent
from apps.read.catalog.models import BookListing
from tests.conftest import wait_for
from tests.processes import subprocess_env

pytestmark = [
    pytest.mark.faults,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True, databases=["default", "read"]),
]

# On-commit hooks run in the order they were registered; this one comes before the wake-up the
# command registers when it appends, so the process is gone before it can send it.
DIE_AFTER_COMMIT = """
import os
from django.db import transaction
from tests.factories import add_book
with transaction.atomic():
    transaction.on_commit(lambda: os._exit(9))
    add_book(title="Committed, then the process died")
"""


def test_an_event_whose_process_died_after_commit_is_delivered_by_the_sweep(celery_worker, report):
    died = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", DIE_AFTER_COMMIT],
        env=subprocess_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    committed_at = time.monotonic()
    assert died.returncode == 9, died.stderr
    event = DomainEvent.objects.get(event_type="BookAdded")
    book_id = event.payload["book_id"]

    wait_for(lambda: BookListing.objects.filter(book_id=book_id).exists(), timeout=15)
    report(
        "lost on-commit hook",
        exit_code=died.returncode,
        delivered_by_sweep_after_seconds=round(time.monotonic() - committed_at, 2),
    )
