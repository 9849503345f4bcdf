"""Read-your-writes waits that hold no worker: an ASGI middleware around Django.

A query sent with a position (`X-Min-Position`, or the view's query parameter) waits here, in
the event loop, until the projectors behind the view have passed it (apps/cqrs/live.py), and
only then enters Django, whose sync views run in threads and hold a pooled database connection.
A waiting request therefore costs a coroutine: no thread, no connection, no worker. The view
sees the wait done (`waited_upstream`) and only reads, marking the answer stale if the bound ran
out. A position the cached head of the log has not reached is passed to the view at once: it
answers 400 when no event has that position yet. Under WSGI (`make run`) the view waits itself,
as before.

Behind the gateway, which says so (`X-Read-Handoff`), a waited read does not enter Django here:
the answer is an `X-Accel-Redirect` that has nginx send the same request on to the query pool's
sync workers, marked as waited for. The live pool's one process then only waits; the reads that
a batch releases at once are served by every query worker rather than queued behind each other
in this process's threads, and at a sync worker's cost (bench/WAITS.md, decision 0003).
"""

import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings
from django.urls import Resolver404, resolve

from apps.cqrs.consistency import (
    HANDOFF_HEADER,
    MIN_POSITION_HEADER,
    WAITED_SCOPE_KEY,
    ReadWait,
)
from apps.cqrs.live import hub
from apps.cqrs.metrics import observe_read_wait

logger = logging.getLogger(__name__)
_HEADER = MIN_POSITION_HEADER.lower().encode()
_HANDOFF = HANDOFF_HEADER.lower().encode()
# Paths handed on as they are: nginx would read a decoded "?" or "%" in one as something else.
_PLAIN_PATH = re.compile(r"/[A-Za-z0-9/_.~-]*")
_PLAIN_QUERY = re.compile(rb"[!-~]*")  # printable ASCII, as it came: fit for a header

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def read_wait_of(view: Callable[..., Any]) -> ReadWait | None:
    """The wait a view declares: `@waits` on a function, `projector_names` on a DRF view."""
    spec = getattr(view, "read_wait", None)
    if spec is None:
        names = getattr(getattr(view, "cls", None), "projector_names", None)
        spec = ReadWait(tuple(names)) if names else None
    return spec


def _header(scope: Scope, name: bytes) -> bytes:
    return next((value for key, value in scope["headers"] if key == name), b"")


def _path(scope: Scope) -> str:
    """The request's path within the application, as Django resolves it."""
    return scope["path"].removeprefix(scope.get("root_path", "")) or "/"


def _requested_position(scope: Scope, parameter: str) -> int | None:
    raw = _header(scope, _HEADER).decode("latin-1")  # as Django reads headers: never fails
    if not raw:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        raw = (query.get(parameter) or [""])[0]
    return int(raw) if raw.isascii() and raw.isdigit() else None  # the view refuses the rest


def _handoff(scope: Scope) -> bytes | None:
    """Where the gateway should send a waited read on (its hand-off location, then the path
    and query as they came), or None to serve it here: not behind the gateway, or a path that
    would not survive the trip."""
    # Anything a client sends decodes as Latin-1; the pattern refuses what is not a path.
    prefix, path = _header(scope, _HANDOFF).decode("latin-1"), _path(scope)
    if not (_PLAIN_PATH.fullmatch(prefix) and _PLAIN_PATH.fullmatch(path)):
        return None
    query = scope.get("query_string", b"")
    if not _PLAIN_QUERY.fullmatch(query):
        return None
    return f"{prefix.rstrip('/')}{path}".encode() + (b"?" + query if query else b"")


class ReadYourWrites:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in {"GET", "HEAD"}:
            scope = await self._wait(scope)
            if WAITED_SCOPE_KEY in scope and (target := _handoff(scope)):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [(b"x-accel-redirect", target), (b"content-length", b"0")],
                    }
                )
                await send({"type": "http.response.body", "body": b""})
                return
        await self.app(scope, receive, send)

    async def _wait(self, scope: Scope) -> Scope:
        # Most reads name no position: leave them before resolving the URL.
        if b"=" not in scope.get("query_string", b"") and not any(
            name == _HEADER for name, _ in scope["headers"]
        ):
            return scope
        try:
            spec = read_wait_of(resolve(_path(scope)).func)
        except Resolver404:
            return scope
        position = _requested_position(scope, spec.parameter) if spec else None
        if spec is None or position is None:
            return scope
        timeout = settings.CQRS_READ_WAIT_SECONDS if spec.timeout is None else spec.timeout
        started = time.monotonic()
        try:
            reached, head = await hub().wait(
                projector_names=spec.projector_names, min_position=position, timeout=timeout
            )
        except Exception as exc:  # the cache and the read database away: the view decides
            logger.warning("Read-your-writes wait failed, the view answers: %s", exc)
            return scope
        if not reached and position > head:
            return scope  # perhaps no such position yet: the view checks the log and says so
        waited = time.monotonic() - started
        observe_read_wait(reached=reached, seconds=waited)
        return {**scope, WAITED_SCOPE_KEY: waited}
