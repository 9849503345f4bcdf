"""Wake-ups after commit: one queued catch-up per projector at a time."""

import json
from collections import Counter

import pytest
import redis
from django.conf import settings
from django.core.cache import cache as django_cache

from apps.cqrs.consistency import HEAD_CACHE_KEY, note_head
from apps.cqrs.tasks import project
from tests.factories import add_author, add_book

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "read"])


def queued_catch_ups() -> Counter:
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    messages = [json.loads(m) for m in broker.lrange("projections", 0, -1)]
    return Counter(m["headers"]["argsrepr"] for m in messages)


def test_commands_in_a_row_queue_one_catch_up_per_projector_until_it_starts():
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    author = add_author()
    for i in range(5):
        add_book(title=f"Book {i}", authors=[author])

    queued = queued_catch_ups()
    assert queued["('catalog.book_listing',)"] == 1
    assert set(queued.values()) == {1}

    # Once the queued catch-up has started, the next command queues another.
    project.run("catalog.book_listing")
    add_book(title="After the catch-up", authors=[author])
    assert queued_catch_ups()["('catalog.book_listing',)"] == 2


def test_the_head_noted_in_the_cache_only_moves_forward():
    # Commits announce their positions in whatever order their hooks run.
    django_cache.delete(HEAD_CACHE_KEY)
    for position in [5, 9, 7]:
        note_head(position)
    assert django_cache.get(HEAD_CACHE_KEY) == 9
    note_head(12)
    assert django_cache.get(HEAD_CACHE_KEY) == 12
