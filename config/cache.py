"""Django's Redis cache backend, made an accelerator that may be away.

The cache only ever holds copies (catalog entries, checkpoints, throttle counters), so an
unreachable Redis must cost speed, never a request: reads become misses and writes are dropped,
with a warning. `add`, `incr` and `get_or_set` still raise, because their callers act on the
answer and handle the outage themselves (apps/cqrs/dispatch.py, apps/read/catalog/cache.py).
"""

import functools
import logging

from django.core.cache.backends.redis import RedisCache
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


class ResilientRedisCache(RedisCache):
    get = _when_unreachable(lambda key, default=None, version=None: default)(RedisCache.get)
    get_many = _when_unreachable(lambda keys, version=None: {})(RedisCache.get_many)
    has_key = _when_unreachable(lambda *a, **k: False)(RedisCache.has_key)
    set = _when_unreachable(lambda *a, **k: None)(RedisCache.set)
    set_many = _when_unreachable(lambda data, *a, **k: list(data))(RedisCache.set_many)
    touch = _when_unreachable(lambda *a, **k: False)(RedisCache.touch)
    delete = _when_unreachable(lambda *a, **k: False)(RedisCache.delete)
    delete_many = _when_unreachable(lambda *a, **k: None)(RedisCache.delete_many)
