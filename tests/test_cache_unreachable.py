"""An unreachable Redis is a cache miss, decided in one place (config/cache.py)."""

import logging

import pytest
from django.core.cache import cache

from apps.cqrs import runtime
from apps.cqrs.projectors import registry
from config.cache import add_with_members, set_max, take_cell, take_members
from tests.factories import add_book
from tests.processes import free_port


@pytest.fixture
def redis_away(settings):
    """The cache pointed at a port nothing listens on."""
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}
    }
    assert settings.CACHES["default"]["BACKEND"] == "django_redis.cache.RedisCache"


def test_every_cache_operation_is_a_miss_or_dropped(redis_away, caplog):
    with caplog.at_level(logging.WARNING, logger="config.cache"):
        assert cache.get("k", "default") == "default"
        assert cache.get_many(["a", "b"]) == {}
        cache.set("k", 1)
        cache.delete("k")
        assert cache.add("k", 1) is None  # unknown, not "already there"
        assert add_with_members(cache, {"a": ["x"]}, 10) is None  # unknown: every slot woken
        assert take_members(cache, "a") is None  # unknown: the whole slot runs
        set_max(cache, "head", 7)
        assert take_cell(cache, "t", limit=1, period=60) is None  # DRF's throttle counts instead
    assert caplog.records
    # One line per failure, at warning level, without a traceback
    assert {r.levelname for r in caplog.records} == {"WARNING"}
    assert all(r.exc_info is None for r in caplog.records)
    assert all("Redis cache unreachable" in r.getMessage() for r in caplog.records)


@pytest.mark.django_db(databases=["default", "read"])
def test_the_catalog_reads_the_tables_when_redis_is_away(redis_away, client):
    book = add_book(title="Parable of the Sower")
    runtime.catch_up(registry.get("catalog.book_listing"))  # refreshes entries, into nothing
    listing = client.get("/api/books/", HTTP_ACCEPT="application/json")
    detail = client.get(f"/api/books/{book.pk}/", HTTP_ACCEPT="application/json")
    page = client.get(f"/books/{book.pk}/")
    assert (listing.status_code, detail.status_code, page.status_code) == (200, 200, 200)
    assert detail.json()["title"] == "Parable of the Sower"
