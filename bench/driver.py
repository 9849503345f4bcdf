"""Command load, from its own process: place orders over HTTP and time every request.

    python -m bench.driver closed --base URL --setup setup.json --books 1,2,3 --requests 2000
    python -m bench.driver open --base URL --setup setup.json --books 1,2,3 --rate 50 --seconds 15

`closed`: `--concurrency` clients place orders back to back until `--requests` are done.
`open`: orders start on a fixed schedule (`--rate` per second) whatever the latency, so a slow
server cannot slow the load down; the projector runtime's announcements tell when the read
side's checkpoint moves, and each order's lag is the time from its event's commit to the
checkpoint passing it.
Prints one JSON object: per request its start time, latency, status and position.
"""

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import time
from urllib.parse import urlsplit

import psycopg
import redis.asyncio

PLACE = "/api/commands/place-order/"
CONNECTIONS = 200  # for the open loop
TIMEOUT = 30  # seconds an order may take before it counts as failed


class Server:
    """Where the orders go: one HTTP/1.0 request a connection, which is how gunicorn's sync
    workers take them anyway (they close every connection after its response). Plain asyncio
    streams rather than an HTTP client library: this process shares the two cores it measures,
    and httpx, which it used before, spent 3 to 4 ms of CPU an order, more than half what the
    web server spends on one; this spends about 1 ms."""

    def __init__(self, base: str) -> None:
        url = urlsplit(base)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.headers = f"Host: {url.netloc}\r\nContent-Type: application/json\r\n"

    async def post(self, path: str, token: str, body: bytes) -> tuple[int, bytes]:
        """(status, body) of one request; OSError or ValueError when there is no answer."""
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            head = (
                f"POST {path} HTTP/1.0\r\n{self.headers}Authorization: Token {token}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            )
            # One write: Nagle's algorithm would hold back a body sent after its headers until
            # the server's delayed ACK (up to 40 ms), timed here as the server's latency.
            writer.write(head.encode() + body)
            response = await reader.read()  # until the server closes
        finally:
            writer.close()
        status_line, _, rest = response.partition(b"\r\n")
        _version, code, *_reason = status_line.split(b" ", 2)
        return int(code), rest.partition(b"\r\n\r\n")[2]


async def place(
    server: Server, token: str, book_id: int, slots: asyncio.Semaphore | None = None
) -> dict:
    body = {"lines": [{"book_id": book_id, "quantity": 1}], "shipping_address": "1 Bench Road"}
    started = time.time()
    t0 = time.perf_counter()
    try:
        async with slots or contextlib.nullcontext():
            code, content = await asyncio.wait_for(
                server.post(PLACE, token, json.dumps(body).encode()), TIMEOUT
            )
    except (TimeoutError, OSError, ValueError):
        # A saturated server (the open loop outruns it) times out: a failed order, recorded
        # as status 0, not the end of the run.
        return {
            "start": started,
            "latency": time.perf_counter() - t0,
            "status": 0,
            "position": None,
        }
    latency = time.perf_counter() - t0
    position = json.loads(content).get("position") if code == 201 else None
    return {"start": started, "latency": latency, "status": code, "position": position}


def progress(done: int, total: int) -> None:
    if done % max(total // 20, 1) == 0 or done == total:
        print(f"\r  {done}/{total} orders", end="", file=sys.stderr, flush=True)


async def closed(args, tokens: list[str], books: list[int]) -> dict:
    results: list[dict] = []
    remaining = iter(range(args.requests))
    server = Server(args.base)

    async def client_loop(n: int) -> None:
        rng = random.Random(n)
        for _ in remaining:
            results.append(await place(server, tokens[n % len(tokens)], rng.choice(books)))
            progress(len(results), args.requests)

    started = time.perf_counter()
    await asyncio.gather(*(client_loop(n) for n in range(args.concurrency)))
    elapsed = time.perf_counter() - started
    print(file=sys.stderr)
    return {"elapsed": elapsed, "requests": results}


# Where the projector runtime announces each checkpoint it moves (apps/cqrs/live.py: CHANNEL).
ANNOUNCEMENTS = "cqrs:passed"


async def follow_checkpoint(
    dsn: str, live_url: str, projector: str, stop: asyncio.Event, samples: list
) -> None:
    """Appends (time, position every partition of `projector` has passed) to `samples` each
    time that position moves: one read of the checkpoints, then the runtime's announcements,
    which are what a read-your-writes wait hears. Polling the table every 2 ms instead cost
    1.0-1.6 s of this process's CPU and 0.3-0.5 s of PostgreSQL's in 10 s: a tenth of the
    two cores, taken from the servers it measures."""
    client = redis.asyncio.Redis.from_url(live_url)
    try:
        async with client.pubsub() as pubsub:
            await pubsub.subscribe(ANNOUNCEMENTS)  # before the read: no move falls between
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                cursor = await conn.execute(
                    "SELECT name, position FROM cqrs_projectorcheckpoint "
                    "WHERE name = %s OR name LIKE %s",
                    [projector, f"{projector}[%"],
                )
                passed = dict(await cursor.fetchall())
            samples.append((time.time(), min(passed.values(), default=0)))
            while not stop.is_set():
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
                if message is None:
                    continue
                news = json.loads(message["data"])
                if news["p"] in passed and news["at"] > passed[news["p"]]:
                    passed[news["p"]] = news["at"]
                    samples.append((time.time(), min(passed.values())))
    finally:
        await client.aclose()


async def open_loop(args, tokens: list[str], books: list[int]) -> dict:
    total = int(args.rate * args.seconds)
    samples: list[tuple[float, int]] = []
    stop = asyncio.Event()
    follower = asyncio.create_task(
        follow_checkpoint(args.read_dsn, args.live_url, args.projector, stop, samples)
    )
    rng = random.Random(1)
    # Orders the server has not taken yet wait for a connection here, in arrival order, and
    # their wait counts in their latency. Left to wait inside httpx's pool (this driver's client
    # before), a few hundred of them made this process spin at 100 % CPU (seen at 100 orders/s
    # on a server that managed about 75), which starved the server it measures.
    slots = asyncio.Semaphore(CONNECTIONS)
    server = Server(args.base)
    begin = time.perf_counter()
    tasks = []
    for i in range(total):
        delay = begin + i / args.rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        token = tokens[i % len(tokens)]
        tasks.append(asyncio.create_task(place(server, token, rng.choice(books), slots)))
        progress(i + 1, total)
    results = await asyncio.gather(*tasks)
    sent_for = time.perf_counter() - begin
    last = max((r["position"] for r in results if r["position"]), default=0)
    deadline = time.time() + 60
    while (not samples or samples[-1][1] < last) and time.time() < deadline:
        await asyncio.sleep(0.01)
    stop.set()
    await follower
    print(file=sys.stderr)
    return {"elapsed": sent_for, "requests": results, "samples": samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["closed", "open"])
    parser.add_argument("--base", required=True)
    parser.add_argument("--setup", required=True, help="JSON file with customer tokens")
    parser.add_argument("--books", required=True, help="comma-separated book ids")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--read-dsn", default="")
    parser.add_argument("--projector", default="orders.history")
    parser.add_argument("--live-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
    args = parser.parse_args()
    with open(args.setup) as f:
        tokens = json.load(f)["tokens"]
    books = [int(b) for b in args.books.split(",")]
    run = closed if args.mode == "closed" else open_loop
    json.dump(asyncio.run(run(args, tokens, books)), sys.stdout)


if __name__ == "__main__":
    main()
