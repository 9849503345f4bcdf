"""Redis entries for book detail and the first page of common catalog lists.

- Detail entries are written by the projector right after its transaction commits (`refresh`),
  and by readers only when absent (`cache.add`): a reader that loaded a row just before a
  change cannot overwrite the projector's newer entry.
- List pages are stored under their request's digest, tagged with the version and the list
  generation read before the page was loaded from the tables. Every committed change bumps the
  generation, so a page tagged with an older one is never served: a changed price or stock
  level is never read from an older page. Entry, version and generation come back in one
  round trip.
- Every key or tag carries a version that a rebuild bumps, so a rebuild leaves nothing old
  behind.
- Entries hold the JSON body as it is sent, so a hit costs neither unpickling nor rendering.
- A version or generation that has to start again (evicted, or never set) starts from the
  clock, never from a number an older entry may carry.
The cache is an accelerator only: when Redis is away, queries read the tables.
"""

import hashlib
import time
from collections.abc import Sequence

from django.core.cache import cache

from apps.cqrs.metrics import observe_cache

TIMEOUT = 3600
VERSION_KEY = "catalog:version"
GENERATION_KEY = "catalog:lists:generation"
LIST_KEY = "catalog:list:{digest}"
# Lists whose first page is cached: no cursor, only these parameters.
CACHEABLE_LIST_PARAMS = {"availability", "format", "language", "ordering", "author", "q"}
# A search's first page is stored once it is asked again within this time: one-off searches
# would otherwise push popular pages out of a cache that evicts the least recently used.
SEARCH_SEEN_KEY = "catalog:search:seen:{digest}"
SEARCH_SEEN_SECONDS = 600


def _fresh_number() -> int:
    return time.time_ns()


def _version() -> int:
    version = cache.get_or_set(VERSION_KEY, _fresh_number, timeout=None)
    return int(version) if version is not None else _fresh_number()


def book_key(book_id: int, version: int | None = None) -> str:
    return f"catalog:v{version or _version()}:book:{book_id}"


def add_book(book_id: int, body: bytes) -> None:
    cache.add(book_key(book_id), body, TIMEOUT)


def list_digest(params: dict[str, str]) -> str | None:
    """The name of a list request's first page, or None when it is not one we cache."""
    if not set(params) <= CACHEABLE_LIST_PARAMS:
        return None
    if "q" in params:  # search ignores case and spacing
        params = {**params, "q": " ".join(params["q"].lower().split())}
    canonical = "&".join(f"{k}={params[k]}" for k in sorted(params))
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


def find_list(digest: str, *, also: Sequence[str] = ()) -> tuple[bytes | None, tuple, dict]:
    """In one round trip: the page named `digest` if it is current (else None), the tags to
    store a newly loaded page with, and the values of the `also` keys."""
    key = LIST_KEY.format(digest=digest)
    values = cache.get_many([VERSION_KEY, GENERATION_KEY, key, *also])
    tags = (values.get(VERSION_KEY), values.get(GENERATION_KEY))
    entry = values.get(key)
    current = entry is not None and None not in tags and tuple(entry[:2]) == tags
    observe_cache("list", current)
    return (entry[2] if current and entry is not None else None), tags, values


def store_list(digest: str, body: bytes, tags: tuple, *, search: bool = False) -> None:
    """Store a page loaded after `tags` were read (`find_list`): any change committed since
    has moved the generation on, so the entry can never be served stale. A `search` page is
    stored from its second request on."""
    if search and cache.add(SEARCH_SEEN_KEY.format(digest=digest), 1, SEARCH_SEEN_SECONDS):
        return

    version, generation = tags
    version = version or _version()
    generation = generation or cache.get_or_set(GENERATION_KEY, _fresh_number, None)
    cache.set(LIST_KEY.format(digest=digest), (version, generation, body), TIMEOUT)


# The version moves only when a rebuild starts over, so each process guesses it is the one it
# read last and fetches that version's entry in the same round trip; a wrong guess costs one more.
_last_version: int | None = None


def find_book(book_id: int, *, also: Sequence[str] = ()) -> tuple[bytes | None, dict]:
    """The book's entry (else None) and the values of the `also` keys, in one round trip
    unless the version has moved since this process last read it."""
    global _last_version
    guess = _last_version
    guessed_key = [book_key(book_id, guess)] if guess else []
    values = cache.get_many([VERSION_KEY, *also, *guessed_key])
    version = values.get(VERSION_KEY)
    entry = None
    if version is not None and version == guess:
        entry = values.get(guessed_key[0])
    elif version is not None:
        _last_version = version
        entry = cache.get(book_key(book_id, version))
    observe_cache("book", entry is not None)
    return entry, values


def refresh(documents: dict[int, bytes]) -> None:
    """After a projector commits: rewrite the changed books' entries with their committed
    documents, retire list pages."""

    version = _version()
    cache.set_many({book_key(i, version): body for i, body in documents.items()}, TIMEOUT)
    _bump(GENERATION_KEY)


def retire_everything() -> None:
    """A rebuild starts over: no entry written before it is read again."""

    _bump(VERSION_KEY)


def _bump(key: str) -> None:
    try:
        cache.incr(key)
    except ValueError:  # evicted or never set: start again from the clock
        cache.set(key, _fresh_number(), timeout=None)
