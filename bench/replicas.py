"""Catalog reads from the read primary against reads from a streaming replica, and the
replica's lag while orders are placed (`make bench-replicas`).

20,000 books. A real streaming replica of the benchmark's database (tests/replica.py) and two
gunicorn servers of 4 sync workers on the same data: one reads the primary, the other reads its
queries from the replica (READ_REPLICA_URLS). wrk reads book details (1,000 hot ids) and the
first page of in-stock books from each, in turns, uncached on both (a replica-routed request
never uses the cache: docs/decisions/0007-read-replicas.md), and the cached detail from the
primary for scale. Then customers place orders at `ORDER_RATE` a second through the primary
server while a sampler notes the primary's WAL position every 100 ms and how long the replica
takes to replay past it. Writes bench/results-replicas.json, bench/REPLICAS.md and
bench/replicas.png.

Everything runs on this one machine, replica included: the replica's reads and its replay share
the cores with the primary, the servers, the worker and wrk.
"""

import json
import os
import random
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

from bench.run import BENCH, BIN, percentile, say

DB_NAME = "bookstore_replicas"
BOOKS = 20_000
SECONDS = 10
ROUNDS = 2
ORDER_RATE = 50
ORDER_SECONDS = 20
REPLICA_PORT_SERVER = 8766


def serve(name: str, port: int, env: dict) -> subprocess.Popen:
    log = open(BENCH / f".{name}.log", "w")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(
        [str(BIN / "gunicorn"), "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", "4"],
        cwd=BENCH.parent, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/bench/constant/", timeout=1)
            return process
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"gunicorn {name} did not start; see bench/.{name}.log")


def wrk(base: str, path: str, hot_ids: list[int] | None, workdir: Path) -> dict:
    from bench import run as bench

    cell = {"endpoint": "detail" if hot_ids else "list", "path": path, "hot_ids": hot_ids or []}
    original = bench.BASE
    bench.BASE = base
    try:
        return bench.wrk(cell, SECONDS, workdir)
    finally:
        bench.BASE = original


class LagSampler(threading.Thread):
    """Every 100 ms: the primary's WAL position now, and the time until the replica has
    replayed past it."""

    def __init__(self, primary_dsn: str, replica_dsn: str) -> None:
        super().__init__(daemon=True)
        self.primary_dsn, self.replica_dsn = primary_dsn, replica_dsn
        self.lags: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        import psycopg

        with (
            psycopg.connect(self.primary_dsn, autocommit=True) as primary,
            psycopg.connect(self.replica_dsn, autocommit=True) as replica,
        ):
            while not self.stop.is_set():
                started = time.monotonic()
                (lsn,) = primary.execute("SELECT pg_current_wal_lsn()").fetchone()
                while not replica.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [lsn]
                ).fetchone()[0]:
                    time.sleep(0.001)
                self.lags.append((time.monotonic() - started) * 1000)
                time.sleep(max(0.0, 0.1 - (time.monotonic() - started)))


def main() -> None:
    from bench import run as bench

    bench.use_database(DB_NAME, redis_db=5)
    from django.core.management import call_command
    from django.db import connections

    from tests.replica import StreamingReplica

    say(f"seeding {BOOKS:,} books")
    call_command("bulk_seed_catalog", books=BOOKS, seed=BOOKS)
    setup = bench.prepare_customers(20)
    books = bench.stocked_books(300, 100_000)
    connections.close_all()
    say("starting a streaming replica, a worker and two servers")
    replica = StreamingReplica()
    processes = bench.start_stack()  # worker, and the primary server on bench.PORT
    replica_server = serve(
        "gunicorn-replica", REPLICA_PORT_SERVER, {"READ_REPLICA_URLS": replica.url(DB_NAME)}
    )
    servers = {"primary": bench.BASE, "replica": f"http://127.0.0.1:{REPLICA_PORT_SERVER}"}
    workdir = BENCH / ".replicas"
    workdir.mkdir(exist_ok=True)
    hot = random.Random(1).sample(range(1, BOOKS + 1), 1000)
    reads: dict[str, list[dict]] = {}
    try:
        bench.wait_for_projectors("before reading")
        replica.wait_caught_up()
        for r in range(ROUNDS):
            for name, base in servers.items():
                say(f"reads, round {r + 1}/{ROUNDS}: {name}")
                detail = wrk(base, "/bench/uncached/books/", hot, workdir)
                listing = wrk(base, "/bench/uncached/books/?availability=in_stock", None, workdir)
                reads.setdefault(f"{name} detail", []).append(detail)
                reads.setdefault(f"{name} list", []).append(listing)
            say(f"reads, round {r + 1}/{ROUNDS}: primary, cached detail")
            reads.setdefault("primary detail, cached", []).append(
                wrk(servers["primary"], "/api/books/", hot, workdir)
            )
        say(f"replication lag: {ORDER_RATE} orders/s for {ORDER_SECONDS} s")
        primary_dsn = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"
        sampler = LagSampler(
            primary_dsn, replica.url(DB_NAME).replace("postgres://", "postgresql://")
        )
        sampler.start()
        orders = bench.driver(
            "open", setup, books, rate=ORDER_RATE, seconds=ORDER_SECONDS, read_dsn=primary_dsn
        )
        sampler.stop.set()
        sampler.join()
    finally:
        replica_server.terminate()
        replica_server.wait()
        bench.stop_stack(processes)
        shutil.copy(replica.dir / "log", BENCH / ".replica.log")
        replica.destroy()
    placed = [x for x in orders["requests"] if x["status"] == 201]
    lag = {
        "orders_per_second": round(len(placed) / orders["elapsed"], 1),
        "samples": len(sampler.lags),
        "p50_ms": round(percentile(sampler.lags, 50), 2),
        "p99_ms": round(percentile(sampler.lags, 99), 2),
        "max_ms": round(max(sampler.lags), 2),
        "series": sampler.lags,
    }
    results = {"reads": reads, "lag": lag}
    (BENCH / "results-replicas.json").write_text(json.dumps(results))
    write_report(results)
    say("done: see bench/REPLICAS.md and bench/replicas.png")


def write_report(results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reads, lag = results["reads"], results["lag"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    names = list(reads)
    left.barh(names, [sum(r["rps"] for r in reads[n]) / len(reads[n]) for n in names])
    left.set_xlabel("requests/s (mean of rounds)")
    left.set_title("Catalog reads, same run")
    right.plot(lag["series"], linewidth=0.8)
    right.set_xlabel("sample (every 100 ms)")
    right.set_ylabel("replay delay (ms)")
    right.set_title(f"Replica delay at {lag['orders_per_second']} orders/s")
    fig.tight_layout()
    fig.savefig(BENCH / "replicas.png", dpi=110)

    def each(runs: list[dict], key: str, scale: float, digits: int) -> str:
        return " / ".join(f"{run[key] * scale:.{digits}f}" for run in runs)

    rows = "\n".join(
        f"| {name} | {each(runs, 'rps', 1, 0)} | {each(runs, 'p50', 1, 1)} | "
        f"{each(runs, 'p99', 1, 1)} | "
        f"{sum(r['non_2xx'] + r['socket_errors'] for r in runs)} |"
        for name, runs in reads.items()
    )
    (BENCH / "REPLICAS.md").write_text(
        f"""# Reads from a streaming replica

`make bench-replicas` (bench/replicas.py): {BOOKS:,} books; a streaming replica of the
benchmark database and two gunicorn servers of 4 sync workers, one reading the primary, one
reading queries from the replica; wrk ({SECONDS} s a cell, 2 threads, 16 connections), in turns,
{ROUNDS} rounds. Uncached on both (a replica-routed request does not use the cache); the cached
detail from the primary for scale. All on one 2-core machine, replica included.

| reads | requests/s (rounds) | p50 ms | p99 ms | errors |
|---|---|---|---|---|
{rows}

Replica delay while customers place orders through the primary server at {ORDER_RATE}/s
({lag["orders_per_second"]} served): every 100 ms the primary's WAL position is noted and the
time until the replica has replayed past it measured. {lag["samples"]} samples: p50
{lag["p50_ms"]} ms, p99 {lag["p99_ms"]} ms, max {lag["max_ms"]} ms.

![reads and delay](replicas.png)
"""
    )


if __name__ == "__main__":
    main()
