"""How many idle order event streams one ASGI server process holds, and its memory
(`make bench-streams`).

One gunicorn process with one uvicorn worker serves the project. Streams to
`/api/orders/{id}/events/` are opened in steps, spread over 200 orders. After each step the
worker's resident memory is read from /proc, a catalog read is timed, and one order is shipped.
The check is that every stream on that order receives the change. Writes bench/STREAMS.md and
bench/streams.png.

It uses a database of its own (bookstore_streams).
"""

import asyncio
import json
import os
import statistics
import subprocess
import time
import urllib.request
from pathlib import Path

from bench.run import BENCH, ROOT, say

DB_NAME = "bookstore_streams"
PORT = 8766
BASE = f"http://127.0.0.1:{PORT}"
STEPS = [0, 500, 1000, 2000, 4000]
OPEN_AT_ONCE = 50


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return int(children[0])


class Stream:
    def __init__(self, order_id: int) -> None:
        self.order_id, self.messages = order_id, []

    async def open(self, token: str) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", PORT)
        self.writer.write(
            f"GET /api/orders/{self.order_id}/events/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Token {token}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        await self.writer.drain()
        status = await self.reader.readline()
        if b" 200 " not in status:
            raise RuntimeError(f"stream for order {self.order_id}: {status!r}")
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while line := await self.reader.readline():
            if line.startswith(b"data: "):
                self.messages.append(json.loads(line[6:]))


async def measure(pid: int, token: str, order_ids: list[int]) -> list[dict]:
    from asgiref.sync import sync_to_async

    from apps.write.orders.models import Order
    from apps.write.orders.services import order_ship
    from tests.factories import WAREHOUSE

    streams: list[Stream] = []
    rows = []
    shippable = Order.objects.filter(status="paid").exclude(lines__backordered__gt=0)
    paid = [pk for pk in shippable.values_list("pk", flat=True) if pk in order_ids]
    for step in STEPS:
        while len(streams) < step:
            batch = [
                Stream(order_ids[(len(streams) + i) % len(order_ids)]) for i in range(OPEN_AT_ONCE)
            ]
            await asyncio.gather(*(s.open(token) for s in batch))
            streams += batch
        await asyncio.sleep(2)  # the opening reads are done
        memory = rss_mib(pid)
        started = time.monotonic()
        reads = []
        for _ in range(20):
            started = time.monotonic()
            await asyncio.to_thread(lambda: urllib.request.urlopen(f"{BASE}/api/books/").read())
            reads.append((time.monotonic() - started) * 1000)
        shipped = paid.pop()
        watching = [s for s in streams if s.order_id == shipped]
        before = [len(s.messages) for s in watching]
        sent = time.monotonic()
        await sync_to_async(order_ship)(actor=WAREHOUSE, order_id=shipped)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(
            len(s.messages) == n for s, n in zip(watching, before, strict=True)
        ):
            await asyncio.sleep(0.01)
        reached = sum(
            1
            for s, n in zip(watching, before, strict=True)
            if len(s.messages) > n and s.messages[-1]["status"] == "shipped"
        )
        rows.append(
            {
                "streams": len(streams),
                "rss_mib": round(memory, 1),
                "catalog_read_p50_ms": round(statistics.median(reads), 1),
                "watching_shipped_order": len(watching),
                "received_shipment": reached,
                "shipment_seconds": round(time.monotonic() - sent, 2),
            }
        )
        say(f"{rows[-1]}")
    for stream in streams:
        stream.writer.close()
    return rows


def main() -> None:
    from bench import run as bench

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # the bench's own ORM calls in its loop
    bench.use_database(DB_NAME, redis_db=8)
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    from apps.cqrs import runtime
    from apps.cqrs.projectors import registry
    from apps.read.orders.models import OrderSummary
    from apps.write.orders.models import Order

    say("seeding 200 orders")
    call_command("seed_demo", books=100, customers=40, orders=400, verbosity=0)
    for projector in registry.all():
        runtime.catch_up(projector)
    staff = get_user_model().objects.create_superuser("bench-staff", "s@example.com", "x")
    token = Token.objects.create(user=staff).key
    # Streams spread over 200 orders, the ones that can be shipped (paid, nothing backordered)
    # first: one of them is shipped at each step.
    shippable = set(
        Order.objects.filter(status="paid")
        .exclude(lines__backordered__gt=0)
        .values_list("pk", flat=True)
    )
    summaries = OrderSummary.objects.values_list("order_id", flat=True)
    order_ids = sorted(summaries, key=lambda pk: pk not in shippable)[:200]
    web = subprocess.Popen(
        [
            str(bench.BIN / "gunicorn"), "config.asgi:application",
            "--worker-class", "uvicorn_worker.UvicornWorker", "--workers", "1",
            "--bind", f"127.0.0.1:{PORT}",
        ],
        cwd=ROOT, env=os.environ, stdout=open(BENCH / ".streams-web.log", "w"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    worker = bench.start("streams-worker", [
        str(bench.BIN / "celery"), "-A", "config", "worker", "-Q",
        "projections,side-effects,rebuilds", "--concurrency", "2", "--loglevel", "WARNING",
    ])  # fmt: skip
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{BASE}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        rows = asyncio.run(measure(worker_pid(web.pid), token, order_ids))
    finally:
        bench.stop_stack([web, worker])
    write_report(rows)
    say("done: see bench/STREAMS.md and bench/streams.png")


def write_report(rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (BENCH / "results-streams.json").write_text(json.dumps(rows))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([r["streams"] for r in rows], [r["rss_mib"] for r in rows], marker="o")
    ax.set_xlabel("open event streams")
    ax.set_ylabel("worker process resident memory (MiB)")
    ax.set_title("One uvicorn worker holding idle order streams")
    fig.tight_layout()
    fig.savefig(BENCH / "streams.png", dpi=110)
    base = rows[0]["rss_mib"]
    table = "\n".join(
        f"| {r['streams']:,} | {r['rss_mib']} | "
        f"{(r['rss_mib'] - base) * 1024 / r['streams'] if r['streams'] else 0:.1f} | "
        f"{r['catalog_read_p50_ms']} | {r['received_shipment']} of {r['watching_shipped_order']} "
        f"in {r['shipment_seconds']} s |"
        for r in rows
    )
    (BENCH / "STREAMS.md").write_text(
        f"""# Idle order event streams in one server process

`make bench-streams` (bench/streams.py): one gunicorn process with one uvicorn worker, streams
to `/api/orders/{{id}}/events/` opened {OPEN_AT_ONCE} at a time over 200 orders, a Celery
worker projecting. At each step: the worker's resident memory, the p50 of 20 catalog reads,
and one order shipped, counting the streams on it that received the change.

| open streams | worker RSS MiB | KiB per stream | catalog read p50 ms | shipment reached |
|---|---|---|---|---|
{table}

![memory against open streams](streams.png)
"""
    )


if __name__ == "__main__":
    main()
