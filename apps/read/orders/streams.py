"""An order's status changes as a server-sent event stream (`GET /api/orders/{id}/events/`).

Each message is one step of the order's timeline in the history read model, with the position
of the event behind it as its id, so `Last-Event-ID` resumes after exactly that step: nothing
lost, nothing repeated. Under ASGI the stream sleeps in the event loop until the projector
announces a batch that touched the order (apps/cqrs/live.py): an idle stream holds no thread and
no database connection. Under WSGI (`make run`) it polls once a second, holding a thread,
and ends after `SYNC_STREAM_SECONDS`. Either ends after CQRS_STREAM_SECONDS at most; the
browser reconnects with the last id it saw.
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator

from apps.contracts.orders import OrderEvent
from apps.cqrs.live import hub, in_thread
from apps.read.orders.models import OrderSummary

KEEP_ALIVE_SECONDS = 15  # a comment line, so that proxies and clients see the stream alive
RETRY_MILLISECONDS = 3000  # how soon a browser reconnects after the stream ends
SYNC_STREAM_SECONDS = 25


def status_changes(*, order_id: int, after: int) -> list[dict]:
    """The order's timeline steps after position `after`, oldest first."""
    timeline = (
        OrderSummary.objects.filter(order_id=order_id).values_list("timeline", flat=True).first()
    )
    return [step for step in timeline or [] if step["position"] > after]


def _message(order_id: int, step: dict) -> bytes:
    data = json.dumps({"order_id": order_id, **step})
    return f"id: {step['position']}\nevent: status\ndata: {data}\n\n".encode()


def _opening() -> bytes:
    return f"retry: {RETRY_MILLISECONDS}\n\n".encode()


async def live_stream(*, order_id: int, after: int, seconds: float) -> AsyncIterator[bytes]:
    yield _opening()
    deadline = time.monotonic() + seconds
    async with hub().watching(f"{OrderEvent.aggregate_type}:{order_id}") as changed:
        while True:
            changed.clear()  # before the read: a batch committed after it sets it again
            for step in await in_thread(status_changes, order_id=order_id, after=after):
                after = step["position"]
                yield _message(order_id, step)
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                await asyncio.wait_for(changed.wait(), min(KEEP_ALIVE_SECONDS, left))
            except TimeoutError:
                yield b": keep-alive\n\n"


def polled_stream(*, order_id: int, after: int, seconds: float) -> Iterator[bytes]:
    yield _opening()
    deadline = time.monotonic() + seconds
    while True:
        for step in status_changes(order_id=order_id, after=after):
            after = step["position"]
            yield _message(order_id, step)
        if time.monotonic() >= deadline:
            return
        time.sleep(1)
