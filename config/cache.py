"""Django's Redis cache backend, made an accelerator that may be away.

The cache only ever holds copies (catalog entries, checkpoints, throttle counters), so an
unreachable Redis must cost speed, never a request: reads become misses and writes are dropped,
with a warning. `add`, `incr` and `get_or_set` still raise, because their callers act on the
answer and handle the outage themselves (apps/cqrs/dispatch.py, apps/read/catalog/cache.py).
"""

import functools
import logging

from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis.exceptions import ConnectionError, TimeoutError

logger = logging.getLogger(__name__)
UNREACHABLE = (ConnectionError, TimeoutError)


def _when_unreachable(fallback):
    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except UNREACHABLE as exc:
                logger.warning("Redis cache unreachable (%s): %s", method.__name__, exc)
                return fallback(*args, **kwargs)

        return wrapper

    return decorate


# Connection pools by server list, shared by every backend instance of the process. Django makes
# a cache backend per thread, and under ASGI per request (each runs in a context of its own): with
# pools per instance, every request opened a new connection to Redis (bench-waits: a cached book
# took 4.9 ms under uvicorn against 1.5 ms under sync workers). redis-py's pools are thread-safe
# and start afresh after a fork.
_POOLS: dict[tuple, dict] = {}


class ClientPerPool(RedisCacheClient):
    """Django's client builds a `redis.Redis` on every cache call, with its response-callback
    table (cProfile: about 170 dict insertions per call). A redis-py client is thread-safe
    and holds nothing but its pool and options, so one per pool does the same job."""

    def __init__(self, servers, *args, **kwargs) -> None:
        super().__init__(servers, *args, **kwargs)
        self._pools = _POOLS.setdefault(tuple(servers), {})
        self._clients: dict = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(pool)
        if client is None:
            client = self._clients[pool] = self._client(connection_pool=pool)
        return client


class ResilientRedisCache(RedisCache):
    def __init__(self, server, params) -> None:
        super().__init__(server, params)
        self._class = ClientPerPool

    get = _when_unreachable(lambda key, default=None, version=None: default)(RedisCache.get)
    get_many = _when_unreachable(lambda keys, version=None: {})(RedisCache.get_many)
    has_key = _when_unreachable(lambda *a, **k: False)(RedisCache.has_key)
    set = _when_unreachable(lambda *a, **k: None)(RedisCache.set)
    set_many = _when_unreachable(lambda data, *a, **k: list(data))(RedisCache.set_many)
    touch = _when_unreachable(lambda *a, **k: False)(RedisCache.touch)
    delete = _when_unreachable(lambda *a, **k: False)(RedisCache.delete)
    delete_many = _when_unreachable(lambda *a, **k: None)(RedisCache.delete_many)

    def add_many(self, keys: list[str], timeout: int) -> list[bool]:
        """`add(key, 1, timeout)` for several keys in one round trip: whether each was added.
        Raises when Redis is unreachable, as `add` does."""
        with self._cache.get_client(write=True).pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.set(self.make_and_validate_key(key), 1, nx=True, ex=timeout)
            return [bool(added) for added in pipe.execute()]

    @_when_unreachable(lambda *a, **k: None)
    def set_max(self, key: str, value: int) -> None:
        """Store `value` unless the stored number is larger, in one round trip (a get and a set
        would take two, and could lower it between them)."""
        self._cache.get_client(write=True).eval(SET_MAX, 1, self.make_and_validate_key(key), value)


# Django's serializer stores integers as plain numbers, which Lua can compare.
SET_MAX = """
local current = tonumber(redis.call('GET', KEYS[1]))
if current == nil or current < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
"""


# `cache` may be Django's proxy for the default cache, so these ask for the method, not the class.
def add_many(cache: BaseCache, keys: list[str], timeout: int) -> list[bool]:
    """`cache.add_many` where the backend has it (Redis), else one `add` per key."""
    if hasattr(cache, "add_many"):
        return cache.add_many(keys, timeout)
    return [cache.add(key, 1, timeout) for key in keys]


def set_max(cache: BaseCache, key: str, value: int) -> None:
    """`cache.set_max` where the backend has it (Redis), else a get and a set."""
    if hasattr(cache, "set_max"):
        cache.set_max(key, value)
    elif value > (cache.get(key) or 0):
        cache.set(key, value, timeout=None)
