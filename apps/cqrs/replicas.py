"""Queries served from PostgreSQL streaming replicas of the read database.

`READ_REPLICA_URLS` adds one database alias per replica (`replica0`, `replica1`, ...). A query
request (a GET or HEAD outside the admin, health and metrics) reads the read side from one
replica in rotation, chosen at its start (`ReplicaReadsMiddleware`); everything else reads the
read primary: projectors, checkpoints, builds, the audit, the admin, workers and commands.
Writes never go to a replica: the router sends every write of the read side to the primary, and
replica connections open read-only (`default_transaction_read_only`), so even raw SQL fails.

A replica is taken out of rotation while it does not answer, or while its replay is further
behind than `READ_REPLICA_MAX_LAG_SECONDS`. Each process checks a replica at most every
`READ_REPLICA_CHECK_SECONDS`, in the request that finds its last check too old; a down replica
costs that request the connect time-out (1 s), and the others nothing. With no replica in
rotation, queries read the primary.

Read-your-writes stays exact because a projector's checkpoint is written in the same
transaction as its rows: a replica's copy of the checkpoint says exactly which events its rows
include. A query sent with a position waits for the replica it reads to pass it (apps/cqrs/
consistency.py); past the bound it reads the primary if the primary has passed it, else it
answers stale. Decision record: docs/decisions/0007-read-replicas.md.
"""

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from django.conf import settings
from django.db import connections
from django.http import HttpRequest
from django.http.response import HttpResponseBase

from apps.cqrs import metrics

logger = logging.getLogger(__name__)
READ_ALIAS = "read"
# The alias the read side is read from in this context; None: the read primary.
_reading: ContextVar[str | None] = ContextVar("cqrs_replica", default=None)
# Paths whose reads stay on the primary: staff need the truth, and probes the primary's.
PRIMARY_PATHS = ("/admin/", "/healthz", "/readyz", "/metrics")

_LAG_SQL = """
SELECT CASE
    WHEN NOT pg_is_in_recovery() THEN 0
    WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
    ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0)
END
"""


def aliases() -> list[str]:
    return list(settings.READ_REPLICA_ALIASES)


def read_alias() -> str:
    """The database alias read-side queries use here: a replica inside a query request that
    was given one, else the read primary."""
    return _reading.get() or READ_ALIAS


def on_replica() -> bool:
    return _reading.get() is not None


def use_primary() -> None:
    """Read the rest of this request from the primary (a read-your-writes fall-back)."""
    _reading.set(None)


@contextmanager
def reading_from(alias: str | None) -> Iterator[None]:
    token = _reading.set(alias)
    try:
        yield
    finally:
        _reading.reset(token)


@dataclass
class ReplicaState:
    alias: str
    healthy: bool
    lag_seconds: float | None  # None: it did not answer
    checked_at: float


_states: dict[str, ReplicaState] = {}


def _check(alias: str) -> ReplicaState:
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute(_LAG_SQL)
            (lag,) = cursor.fetchone()
        lag = float(lag)
        healthy = lag <= settings.READ_REPLICA_MAX_LAG_SECONDS
    except Exception as exc:  # down, or refusing connections: out of rotation until it answers
        connections[alias].close()
        logger.warning("Read replica %s is out of rotation: %s", alias, exc)
        lag, healthy = None, False
    else:
        if not healthy:
            logger.warning("Read replica %s is out of rotation: %.1f s behind", alias, lag)
    state = ReplicaState(alias, healthy, lag, time.monotonic())
    metrics.replica_up.labels(alias).set(1 if healthy else 0)
    _states[alias] = state
    return state


def state(alias: str) -> ReplicaState:
    """The replica's state as last checked, checked again when that is too old."""
    known = _states.get(alias)
    if known is None or time.monotonic() - known.checked_at > settings.READ_REPLICA_CHECK_SECONDS:
        known = _check(alias)
    return known


def choose() -> str | None:
    """A replica in rotation, at random (spreading the reads of many processes), or None."""
    healthy = [alias for alias in aliases() if state(alias).healthy]
    return random.choice(healthy) if healthy else None


def report() -> dict[str, str]:
    """For /readyz: each replica's state, checked now."""
    states = {alias: _check(alias) for alias in aliases()}
    return {
        alias: "ok"
        if s.healthy
        else ("unavailable" if s.lag_seconds is None else f"lagging {s.lag_seconds:.0f}s")
        for alias, s in states.items()
    }


class ReplicaReadsMiddleware:
    """Gives each query request a replica to read the read side from, for its whole length."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if (
            not aliases()
            or request.method not in ("GET", "HEAD")
            or request.path.startswith(PRIMARY_PATHS)
        ):
            return self.get_response(request)
        alias = choose()
        with reading_from(alias):
            response = self.get_response(request)
        if alias is not None and getattr(request, "database_unavailable", False):
            # The replica went away since its last check (DatabaseUnavailableMiddleware
            # answered 503): out of the rotation, and the read, safe to repeat, goes to the
            # primary.
            _check(alias)
            request.database_unavailable = False  # type: ignore[attr-defined]
            response = self.get_response(request)
        return response
