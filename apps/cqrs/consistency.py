"""Read-your-writes: let a query wait, within a bound, for the projectors behind it to pass the
position a client's command returned."""

import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from apps.cqrs.projectors import Projector, registry

POLL_SECONDS = 0.02
HEAD_CACHE_KEY = "cqrs:head-position"


def note_head(position: int) -> None:
    """Remember the newest committed position, so that queries can report their lag without
    asking the write database. Approximate under concurrent commits, which is all a lag needs."""
    try:
        if position > (cache.get(HEAD_CACHE_KEY) or 0):
            cache.set(HEAD_CACHE_KEY, position, timeout=None)
    except Exception:
        pass


def known_head(at_least: int) -> int:
    try:
        return max(cache.get(HEAD_CACHE_KEY) or 0, at_least)
    except Exception:
        return at_least


@dataclass(frozen=True)
class ReadConsistency:
    position: int  # every event up to here is in the read model
    head: int  # the newest event in the log
    waited: float  # seconds spent waiting
    satisfied: bool  # False when the bound ran out before `min_position` was reached

    @property
    def lag(self) -> int:
        return max(self.head - self.position, 0)


def read_position(projectors: list[Projector]) -> int:
    """The position every one of these projectors has passed."""
    positions = [
        p.checkpoint_model.objects.using(p.database)
        .filter(name=p.name)
        .values_list("position", flat=True)
        .first()
        or 0
        for p in projectors
    ]
    return min(positions, default=0)


def wait_for_position(
    *, projector_names: list[str], min_position: int | None, timeout: float | None = None
) -> ReadConsistency:
    """Wait until the named projectors have passed `min_position`, or `timeout` runs out
    (CQRS_READ_WAIT_SECONDS by default). Never raises for a slow projector: the caller answers
    with what the read model has and says so."""
    projectors = [registry.get(name) for name in projector_names]
    timeout = settings.CQRS_READ_WAIT_SECONDS if timeout is None else timeout
    started = time.monotonic()
    position = read_position(projectors)
    while min_position is not None and position < min_position:
        if time.monotonic() - started >= timeout:
            break
        time.sleep(POLL_SECONDS)
        position = read_position(projectors)
    satisfied = min_position is None or position >= min_position
    return ReadConsistency(
        position=position,
        head=known_head(position),
        waited=time.monotonic() - started,
        satisfied=satisfied,
    )
