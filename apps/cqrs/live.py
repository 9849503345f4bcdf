"""Live news of the read models, for waits and streams that hold no server worker.

After each batch commits, the projector runtime publishes on one Redis channel which partition
has passed which position and the keys (aggregates) its batch touched (`announce`). Each web
process under ASGI runs one `Hub`: a single subscription that wakes, inside the event loop,

- read-your-writes waits (`Hub.wait`), once every partition behind a query has passed the
  position a client sent, and
- event streams (`Hub.watching`), only when a batch touched their key, so that an idle stream
  costs a coroutine and an `asyncio.Event`, not a worker, a thread or a database connection.

Redis pub/sub loses messages only with the connection (a reconnect, a Redis restart). The
channel only hurries things along: a pending wait re-reads the checkpoints every
`CQRS_LIVE_REFRESH_SECONDS`, and streams re-read their row after every reconnect, so a lost
message costs latency, never a change. Without Redis the hub polls the checkpoints instead.
"""

import asyncio
import json
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager, suppress
from typing import Any, TypeVar

import redis
import redis.asyncio
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.db import connections

from apps.cqrs.consistency import (
    CHECKPOINT_CACHE_KEY,
    HEAD_CACHE_KEY,
    note_checkpoint,
    partition_names,
)
from apps.cqrs.models import Checkpoint
from apps.cqrs.projectors import registry

logger = logging.getLogger(__name__)
CHANNEL = "cqrs:passed"
# Without Redis there are no messages, only re-reads.
POLL_SECONDS = 0.05
T = TypeVar("T")

_publisher: redis.Redis | None = None


def _publisher_client() -> redis.Redis:
    global _publisher
    if _publisher is None:
        _publisher = redis.Redis.from_url(
            settings.CQRS_LIVE_URL, socket_connect_timeout=1, socket_timeout=1
        )
    return _publisher


def announce(
    positions: Mapping[str, int], *, keys: Mapping[str, Iterable[str]] | None = None
) -> None:
    """Tell the web processes that each partition named has moved its checkpoint to its
    position, and which keys its batch touched (none when it only moved past others' events:
    waits need that too). One message a partition, all in one round trip. Called after the
    batch's commit; a failure costs the listeners latency, nothing else."""
    if not settings.CQRS_LIVE_URL or not positions:
        return
    keys = keys or {}
    try:
        pipeline = _publisher_client().pipeline(transaction=False)
        for name, position in positions.items():
            news = {"p": name, "at": position, "keys": sorted(set(keys.get(name, ())))}
            pipeline.publish(CHANNEL, json.dumps(news))
        pipeline.execute()
    except redis.RedisError as exc:
        logger.warning("Could not announce %s: %s", positions, exc)


async def in_thread(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking Django code outside the event loop, and give back the database connections
    it opened: a thread of the default executor outlives the call, and a connection left in it
    would stay checked out of the pool."""

    def call() -> T:
        try:
            return function(*args, **kwargs)
        finally:
            for connection in connections.all(initialized_only=True):
                connection.close()

    return await sync_to_async(call, thread_sensitive=False)()


def _partitions_by_name() -> dict[str, Any]:
    return {part.name: part for p in registry.all() for part in p.partition_list()}


def read_positions(names: list[str], *, at_least: int = 0) -> tuple[dict[str, int], int]:
    """The checkpoints of these partitions and the head of the log, from the cache; from the
    read database for a partition the cache lacks or shows below `at_least` (a cached value is
    never ahead of the table, but may lag it). Blocking: call through `in_thread`."""
    keys = {name: CHECKPOINT_CACHE_KEY.format(name=name) for name in names}
    values = cache.get_many([*keys.values(), HEAD_CACHE_KEY])
    head = values.get(HEAD_CACHE_KEY) or 0
    found = {name: values[key] for name, key in keys.items() if key in values}
    unsure = [name for name in names if found.get(name, -1) < at_least]
    if unsure:
        parts = _partitions_by_name()
        by_model: dict[tuple[type[Checkpoint], str], list[str]] = {}
        for name in unsure:
            projector = parts[name].projector
            by_model.setdefault((projector.checkpoint_model, projector.database), []).append(name)
        for (model, database), group in by_model.items():
            rows = model._default_manager.using(database).filter(name__in=group)
            for name, position in rows.values_list("name", "position"):
                found[name] = position
                note_checkpoint(name, position)
    return found, head


class _Wait:
    def __init__(self, names: list[str], position: int, future: asyncio.Future[None]) -> None:
        self.names, self.position, self.future = names, position, future


class Hub:
    """One per event loop (so one per ASGI worker process); see the module docstring."""

    def __init__(self) -> None:
        self._known: dict[str, int] = {}
        self._waits: set[_Wait] = set()
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None
        self._subscribed = False
        # The cache's Redis, for the head of the log (config/cache.py stores integers as they
        # are); None with another cache backend, and then the head is read in a thread.
        self._cache_client, self._head_key = None, None
        location = settings.CACHES["default"].get("LOCATION")
        if isinstance(location, str) and location.startswith(("redis://", "rediss://")):
            self._cache_client = redis.asyncio.Redis.from_url(
                location, socket_connect_timeout=1, socket_timeout=1
            )
            self._head_key = cache.make_key(HEAD_CACHE_KEY)

    # --- read-your-writes ---------------------------------------------------------------------

    async def wait(
        self, *, projector_names: Iterable[str], min_position: int, timeout: float
    ) -> tuple[bool, int]:
        """Wait until every partition of these projectors has passed `min_position`, at most
        `timeout` seconds. Returns (whether it was reached, the log's head as cached, 0 when
        unknown). A position beyond that head is not waited for: the caller answers it.

        Costs no thread and no query once the hub is subscribed and knows the partitions: it
        trusts their announced positions. One that claims too much (a projector rebuilt in
        place starts again from 0) only sends the request on early; the view reads the
        checkpoints again and marks the answer stale."""
        names = partition_names(projector_names)
        self._start()
        head = await self._cached_head()
        if not (self._subscribed and all(name in self._known for name in names)):
            heard = dict(self._known)
            found, cached_head = await in_thread(read_positions, names, at_least=min_position)
            for name, position in found.items():
                # The truth, even below what an older message said; but a message heard while
                # this read was on its way is newer than the read.
                if self._known.get(name) != heard.get(name):
                    position = max(position, self._known[name])
                self._known[name] = position
            head = cached_head if head is None else head
        if self._reached(names, min_position):
            return True, head or 0
        if head is None or min_position > head:
            return False, head or 0
        wait = _Wait(names, min_position, asyncio.get_running_loop().create_future())
        self._waits.add(wait)
        try:
            await asyncio.wait_for(asyncio.shield(wait.future), timeout)
            return True, head
        except TimeoutError:
            return False, head
        finally:
            self._waits.discard(wait)

    async def _cached_head(self) -> int | None:
        """The head of the log as commands noted it in the cache, read in the event loop."""
        if self._cache_client is None or self._head_key is None:
            return None
        try:
            value = await self._cache_client.get(self._head_key)
        except redis.RedisError:
            return None
        return int(value) if value is not None and value.isdigit() else None

    def _reached(self, names: list[str], position: int) -> bool:
        return all(self._known.get(name, -1) >= position for name in names)

    def _learn(self, positions: dict[str, int]) -> None:
        for name, position in positions.items():
            if position > self._known.get(name, -1):
                self._known[name] = position
        for wait in list(self._waits):
            if not wait.future.done() and self._reached(wait.names, wait.position):
                wait.future.set_result(None)

    # --- streams ------------------------------------------------------------------------------

    @asynccontextmanager
    async def watching(self, key: str) -> AsyncIterator[asyncio.Event]:
        """An event set whenever a batch touching `key` has committed (and after a reconnect,
        when messages may have been missed). Enter it before reading, so that nothing committed
        between the read and the wait goes unnoticed; clear it before each read."""
        changed = asyncio.Event()
        self._watchers.setdefault(key, set()).add(changed)
        self._start()
        try:
            yield changed
        finally:
            watchers = self._watchers.get(key, set())
            watchers.discard(changed)
            if not watchers:
                self._watchers.pop(key, None)

    def _touch(self, keys: Iterable[str]) -> None:
        for key in keys:
            for changed in self._watchers.get(key, ()):
                changed.set()

    def _touch_all(self) -> None:
        self._touch(list(self._watchers))

    # --- the listener -------------------------------------------------------------------------

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._listen())

    async def _listen(self) -> None:
        while True:
            try:
                if settings.CQRS_LIVE_URL:
                    await self._subscribe()
                else:
                    await self._poll(POLL_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("Live updates interrupted, retrying in 1 s: %s", exc)
                await asyncio.sleep(1)

    async def _subscribe(self) -> None:
        client = redis.asyncio.Redis.from_url(
            settings.CQRS_LIVE_URL, socket_connect_timeout=1, health_check_interval=10
        )
        try:
            async with client.pubsub() as pubsub:
                await pubsub.subscribe(CHANNEL)
                self._subscribed = True
                self._touch_all()  # messages published before (re)subscribing are lost
                refreshed, every = time.monotonic(), settings.CQRS_LIVE_REFRESH_SECONDS
                while True:
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=every
                    )
                    if message is not None:
                        news = json.loads(message["data"])
                        self._learn({news["p"]: news["at"]})
                        self._touch(news["keys"])
                    if self._waits and time.monotonic() - refreshed >= every:
                        await self._refresh()
                        refreshed = time.monotonic()
        finally:
            # Until subscribed again, waits read the checkpoints: messages are being missed.
            self._subscribed = False
            with suppress(Exception):
                await client.aclose()

    async def _poll(self, every: float) -> None:
        touched = time.monotonic()
        while True:
            await asyncio.sleep(every)
            if self._waits:
                await self._refresh()
            if time.monotonic() - touched >= 1:  # streams re-read their rows once a second
                self._touch_all()
                touched = time.monotonic()

    async def _refresh(self) -> None:
        names = sorted({name for wait in self._waits for name in wait.names})
        lowest = min(wait.position for wait in self._waits)
        found, _ = await in_thread(read_positions, names, at_least=lowest)
        self._learn(found)


_hubs: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub]" = weakref.WeakKeyDictionary()


def hub() -> Hub:
    """This event loop's hub."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        found = _hubs[loop] = Hub()
    return found
