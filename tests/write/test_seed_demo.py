import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.cqrs import runtime
from apps.cqrs.models import DomainEvent
from apps.cqrs.projectors import registry
from apps.read.catalog.models import BookListing
from apps.write.catalog.models import Book
from apps.write.customers.models import Customer
from apps.write.orders.models import Order

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "read"])


def test_seed_demo_builds_history_through_the_commands():
    call_command("seed_demo", books=20, customers=4, orders=15, verbosity=0)

    assert Book.objects.count() == 20
    assert Customer.objects.count() == 4
    placed = DomainEvent.objects.filter(event_type="OrderPlaced").count()
    assert placed == Order.objects.count() > 0
    assert DomainEvent.objects.filter(event_type="BookAdded").count() == 20
    runtime.catch_up(registry.get("catalog.book_listing"))
    assert BookListing.objects.count() == 20

    call_command("seed_demo", books=5, if_empty=True, verbosity=0)
    assert Book.objects.count() == 20


@pytest.mark.parametrize(
    "counts", [{"books": -1}, {"books": 0, "customers": 3, "orders": 2}, {"customers": -5}]
)
def test_seed_demo_refuses_bad_counts(counts):
    with pytest.raises(CommandError):
        call_command("seed_demo", verbosity=0, **counts)
    assert not DomainEvent.objects.exists()


def test_demo_books_read_like_real_books():
    import itertools
    import random
    import re

    from apps.write.demo.words import book_text

    rng = random.Random(7)
    texts = [book_text(rng) for _ in range(2000)]
    for text in texts:
        title = text["title"]
        assert not re.search(r"\bA [AEIOU]", title), title  # "A Atlas"
        words = title.lower().split()
        assert all(a != b for a, b in itertools.pairwise(words)), title
        assert text["description"].endswith("."), text
        assert "{" not in title + text["subtitle"] + text["description"], text
    # Varied enough that a demo catalog of 300 seldom repeats a title
    assert len({t["title"] for t in texts[:300]}) >= 270
