"""A full rebuild of the catalog listing while shoppers read it and staff change prices: no reader
sees an error, a short first page or a missing book, and no price change is lost. bench/rebuild.py
measures the same at 20,000 books."""

import random
import subprocess
import sys
import threading
import time
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connections

from apps.cqrs.models import ReadModelVersion
from apps.read.catalog.models import BookListing
from apps.write.catalog import services
from apps.write.catalog.models import Book
from tests.conftest import wait_until_caught_up
from tests.readers import Readers, between, tally

pytestmark = [
    pytest.mark.faults,
    pytest.mark.django_db(transaction=True, databases=["default", "read"]),
]
BOOKS = 4000
QUIET_SECONDS = 3.0


def change_prices(book_ids: list[int], stop: threading.Event, changed: list[int]) -> None:
    rng = random.Random(7)
    try:
        while not stop.is_set():
            book_id = rng.choice(book_ids)
            price = Decimal(rng.randrange(500, 6000)).scaleb(-2)
            services.book_change_price(actor=None, book_id=book_id, price=price)
            changed.append(book_id)
            time.sleep(0.02)
    finally:
        connections.close_all()


def test_readers_see_the_whole_catalog_throughout_a_rebuild(stack, report):
    call_command("bulk_seed_catalog", books=BOOKS, authors=60, verbosity=0)
    wait_until_caught_up(timeout=180)
    book_ids = list(BookListing.objects.values_list("book_id", flat=True))
    assert len(book_ids) == BOOKS

    readers = Readers(stack.url, book_ids, threads=4).start()
    time.sleep(QUIET_SECONDS)
    stop, changed = threading.Event(), []
    writer = threading.Thread(target=change_prices, args=(book_ids, stop, changed))
    writer.start()
    started = time.monotonic()
    # As staff would run it
    subprocess.run(
        [sys.executable, "manage.py", "rebuild_read_models", "--projector",
         "catalog.book_listing", "-v", "0"],
        cwd=settings.BASE_DIR, env=stack.env, check=True, timeout=300,
    )  # fmt: skip
    ended = time.monotonic()
    time.sleep(1.0)
    stop.set()
    writer.join()
    reads = readers.stop()

    quiet, during = tally(between(reads, 0, started)), tally(between(reads, started, ended))
    everything = tally(reads)
    report(
        "rebuild while serving",
        books=BOOKS,
        rebuild_s=round(ended - started, 1),
        price_changes=len(changed),
        **{f"quiet_{k}": v for k, v in quiet.items() if k in ("reads", "p50_ms", "p99_ms")},
        **{f"during_{k}": v for k, v in during.items()},
    )
    assert during["reads"] > 100
    wrong = ("not_200", "short_first_pages", "missing_books")
    assert {key: everything[key] for key in wrong} == dict.fromkeys(wrong, 0)
    # Every price change made during the rebuild is in the listing that serves now
    wait_until_caught_up(timeout=60)
    prices = dict(Book.objects.values_list("pk", "price"))
    listed = dict(BookListing.objects.values_list("book_id", "price"))
    assert {i for i in prices if prices[i] != listed.get(i)} == set()
    assert ReadModelVersion.objects.get(name="catalog.book_listing").state == ""
