"""The one place that decides what happens when Redis, the cache, is away.

The cache only ever holds copies (catalog entries, checkpoints, throttle counters, wake-up
markers), so an unreachable Redis must cost speed, never a request. The backend is django-redis
with IGNORE_EXCEPTIONS (settings.CACHES), 1-second socket time-outs, and its connection pools
shared by the whole process:

- reads are misses (`get` answers the default, `get_many` nothing), writes are dropped;
- `add`, `incr` and `delete` answer None, which callers that act on the answer read as
  "unknown": the request for another pass waits for the lock instead (apps/cqrs/runtime.py);
- each failure is one warning line (`OneLine`), not a traceback per call.

So no caller catches cache errors. `add_with_members`, `take_members`, `set_max` and
`take_cell` below are operations Django's API lacks, done on django-redis's client in one
round trip, under the same rule. The live pool's hub (apps/cqrs/live.py) talks to Redis on its
own, asynchronously, and falls back to polling the checkpoints while it cannot.
"""

import logging
from typing import NamedTuple

from django.core.cache.backends.base import BaseCache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


class OneLine(logging.Filter):
    """django-redis logs each ignored error with its traceback; during an outage that is a
    traceback per cache call. Keep the message and the cause, at warning level."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            cause = record.exc_info[1].__cause__ or record.exc_info[1]
            record.msg, record.args = "Redis cache unreachable: %s", (cause,)
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _client(cache: BaseCache):
    """The redis-py client behind a django-redis cache, or None for another backend. `cache`
    may be Django's proxy for the default cache, so this asks the instance, not its class."""
    backend_client = getattr(cache, "client", None)
    return backend_client.get_client(write=True) if backend_client is not None else None


class Added(NamedTuple):
    added: bool  # the key was not there: the caller is the one to act on it
    pause: float  # seconds left of the pause the last `take_members` of the key set; 0 if none


def add_with_members(
    cache: BaseCache,
    keys: dict[str, list[str]],
    timeout: int,
    *,
    raise_to: tuple[str, int] | None = None,
) -> list[Added] | None:
    """For each key: add `members` to the set beside it, then `add(key, 1, timeout)`; whether
    each key was added, and what is left of its pause. One atomic round trip, so that
    `take_members` sees a key and its members together. With `raise_to` (key, value), the same
    round trip also does `set_max` of it. None without Redis (another backend, or Redis away):
    nothing is stored, but for `raise_to` on another backend.
    """
    client = _client(cache)
    if client is None:
        if raise_to is not None:
            set_max(cache, *raise_to)
        return None
    names = [cache.make_and_validate_key(key) for key in keys]
    args: list[object] = [timeout, raise_to[1] if raise_to is not None else ""]
    for members in keys.values():
        args += [len(members), *members]
    if raise_to is not None:
        names.append(cache.make_and_validate_key(raise_to[0]))
    try:
        replies = client.register_script(ADD_WITH_MEMBERS)(keys=names, args=args)
    except RedisError as exc:
        logger.warning("Redis cache unreachable: %s", exc)
        return None
    return [
        Added(bool(added), max(left, 0) / 1000)
        for added, left in zip(replies[0::2], replies[1::2], strict=True)
    ]


def take_members(cache: BaseCache, key: str, *, pause: float = 0) -> set[str] | None:
    """Delete a key added by `add_with_members` and return the members gathered beside it, in
    one atomic round trip; None when they cannot be known (no Redis, or Redis away). With a
    `pause`, `add_with_members` reports the rest of it for this key until it has passed."""
    client = _client(cache)
    if client is None:
        return None
    name = cache.make_and_validate_key(key)
    try:
        with client.pipeline(transaction=True) as pipe:
            pipe.smembers(f"{name}:members")
            pipe.delete(f"{name}:members", name)
            if pause > 0:
                pipe.set(f"{name}:paused", 1, px=max(int(pause * 1000), 1))
            members = pipe.execute()[0]
    except RedisError as exc:
        logger.warning("Redis cache unreachable: %s", exc)
        return None
    return {m.decode() if isinstance(m, bytes) else m for m in members}


def set_max(cache: BaseCache, key: str, value: int) -> None:
    """Store `value` unless the stored number is larger, in one round trip (a get and a set
    would take two, and could lower it between them). Dropped with Redis away."""
    client = _client(cache)
    if client is None:
        if value > (cache.get(key) or 0):
            cache.set(key, value, timeout=None)
        return
    try:
        client.eval(SET_MAX, 1, cache.make_and_validate_key(key), value)
    except RedisError as exc:
        logger.warning("Redis cache unreachable: %s", exc)


def take_cell(cache: BaseCache, key: str, *, limit: int, period: float) -> float | None:
    """Rate limiting by the generic cell rate algorithm: a request may go when at most `limit`
    have gone in the `period` (seconds) before it, counted so that the limit refills evenly.
    Records it and answers 0 when it may go; otherwise the seconds it must wait. One number
    a key and one round trip, whatever the limit, on Redis's clock (all servers share it).
    None without Redis (another backend, or Redis away): nothing is known or recorded."""
    client = _client(cache)
    if client is None:
        return None
    interval_ms = period * 1000 / limit
    try:
        wait_ms = client.register_script(TAKE_CELL)(
            keys=[cache.make_and_validate_key(key)], args=[interval_ms, period * 1000]
        )
    except RedisError as exc:
        logger.warning("Redis cache unreachable: %s", exc)
        return None
    return int(wait_ms) / 1000


# The key holds the theoretical arrival time: when the next request would be due were requests
# spread evenly. A request may go unless that lies further ahead than the period allows.
TAKE_CELL = """
local time = redis.call('TIME')
local now = time[1] * 1000 + math.floor(time[2] / 1000)
local interval, period = tonumber(ARGV[1]), tonumber(ARGV[2])
local due = math.max(tonumber(redis.call('GET', KEYS[1])) or now, now) + interval
if due - period > now then return math.ceil(due - period - now) end
redis.call('SET', KEYS[1], tostring(due), 'PX', math.ceil(due - now))
return 0
"""


# One script rather than a MULTI of four commands a key: redis-py's packing and parsing of
# those was most of a wake-up's cost in the web process.
ADD_WITH_MEMBERS = """
local timeout, raise_to, replies, at = tonumber(ARGV[1]), ARGV[2], {}, 3
for i = 1, #KEYS - (raise_to == '' and 0 or 1) do
  local name, count = KEYS[i], tonumber(ARGV[at])
  redis.call('SADD', name .. ':members', unpack(ARGV, at + 1, at + count))
  at = at + count + 1
  redis.call('EXPIRE', name .. ':members', timeout * 2)  -- outlives the key
  replies[#replies + 1] = redis.call('SET', name, 1, 'NX', 'EX', timeout) and 1 or 0
  replies[#replies + 1] = redis.call('PTTL', name .. ':paused')  -- -2 when there is none
end
local current = raise_to ~= '' and tonumber(redis.call('GET', KEYS[#KEYS]))
if raise_to ~= '' and (not current or current < tonumber(raise_to)) then
  redis.call('SET', KEYS[#KEYS], raise_to)
end
return replies
"""

# django-redis stores integers as plain numbers, which Lua can compare.
SET_MAX = """
local current = tonumber(redis.call('GET', KEYS[1]))
if current == nil or current < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
"""
