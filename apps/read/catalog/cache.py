"""Redis entries for book detail and the first page of common catalog lists.

- Detail entries are written by the projector right after its transaction commits (`refresh`),
  and by readers only when absent (`cache.add`): a reader that loaded a row just before a
  change cannot overwrite the projector's newer entry.
- List pages are keyed by a generation that every committed change bumps, so a changed price
  or stock level is never served from an older page.
- Every key carries a version that a rebuild bumps, so a rebuild leaves nothing old behind.
- Entries hold the JSON body as it is sent, so a hit costs neither unpickling nor rendering.
The cache is an accelerator only: when Redis is away, queries read the tables.
"""

import hashlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

from django.core.cache import cache
from rest_framework.renderers import JSONRenderer

render = JSONRenderer().render
logger = logging.getLogger(__name__)
TIMEOUT = 3600
VERSION_KEY = "catalog:version"
GENERATION_KEY = "catalog:lists:generation"
# Lists whose first page is cached: no cursor, no search, only these parameters.
CACHEABLE_LIST_PARAMS = {"availability", "format", "ordering", "author"}


def _safely(default: Any, operation: Callable[[], Any]) -> Any:
    try:
        return operation()
    except Exception:
        logger.warning("Catalog cache unavailable; reading the tables.", exc_info=True)
        return default


def _version() -> int:
    return cache.get_or_set(VERSION_KEY, 1, timeout=None)


def book_key(book_id: int, version: int | None = None) -> str:
    return f"catalog:v{version or _version()}:book:{book_id}"


def get_book(book_id: int) -> bytes | None:
    return _safely(None, lambda: cache.get(book_key(book_id)))


def add_book(book_id: int, data: dict) -> None:
    _safely(None, lambda: cache.add(book_key(book_id), render(data), TIMEOUT))


def list_key(params: dict[str, str]) -> str | None:
    """The key of a list request's first page, or None when it is not one we cache."""
    if not set(params) <= CACHEABLE_LIST_PARAMS:
        return None
    canonical = "&".join(f"{k}={params[k]}" for k in sorted(params))
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:24]

    def key() -> str:
        known = cache.get_many([VERSION_KEY, GENERATION_KEY])
        version = known.get(VERSION_KEY) or _version()
        generation = known.get(GENERATION_KEY) or cache.get_or_set(GENERATION_KEY, 1, None)
        return f"catalog:v{version}:list:{generation}:{digest}"

    return _safely(None, key)


def get_list(key: str) -> bytes | None:
    return _safely(None, lambda: cache.get(key))


def add_list(key: str, data: dict) -> None:
    _safely(None, lambda: cache.add(key, render(data), TIMEOUT))


def refresh(book_ids: Iterable[int], serialize: Callable[[Iterable[int]], dict[int, dict]]) -> None:
    """After a projector commits: rewrite the changed books' entries, retire list pages."""

    def run() -> None:
        version = _version()
        entries = {book_key(i, version): render(data) for i, data in serialize(book_ids).items()}
        cache.set_many(entries, TIMEOUT)
        try:
            cache.incr(GENERATION_KEY)
        except ValueError:
            cache.set(GENERATION_KEY, 1, timeout=None)

    _safely(None, run)


def retire_everything() -> None:
    """A rebuild starts over: no entry written before it is read again."""

    def run() -> None:
        try:
            cache.incr(VERSION_KEY)
        except ValueError:
            cache.set(VERSION_KEY, 2, timeout=None)

    _safely(None, run)
