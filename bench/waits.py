"""Other reads while clients wait for their own writes (`make bench-waits`).

2,000 books; a writer changes a price 20 times a second; reader threads read the catalog one
request after another (book details and first pages of lists, as bench/rebuild.py does). Then
50 clients each read a book with `?min_position=` set to the position the writer committed last,
which the projector is about to pass, pausing `THINK_SECONDS` between reads; then 4 clients send
positions beyond the head of the log, as anyone can. The other readers' p50 in each phase is
compared with the quiet one. Everything goes through the nginx gateway, in front of the
production shape (plain reads on 4 sync workers, waits on a live pool of 1 uvicorn worker, which
hands the reads it has waited for back to them) and, for comparison, in front of 4 sync workers
serving everything. Writes bench/results-waits.json, bench/WAITS.md and bench/waits.png.

It uses a database of its own (bookstore_waits), so the other benchmarks' data stays as it is.
"""

import json
import os
import random
import threading
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path

from bench.run import BENCH, percentile, say

DB_NAME = "bookstore_waits"
BOOKS = 2_000
PHASE_SECONDS = 15.0
WARM_UP_SECONDS = 5.0
READER_THREADS = 4
WAITERS = 50
THINK_SECONDS = 0.5
BEYOND_HEAD_CLIENTS = 4
WRITES_PER_SECOND = 20


class Writer(threading.Thread):
    """Changes prices and keeps the position of the last committed change."""

    def __init__(self, book_ids: list[int]) -> None:
        super().__init__(daemon=True)
        self.book_ids, self.position, self.stop = book_ids, 0, threading.Event()

    def run(self) -> None:
        from django.db import connections

        from apps.cqrs.consistency import head_position
        from apps.write.catalog import services

        rng = random.Random(7)
        try:
            while not self.stop.is_set():
                price = Decimal(rng.randrange(500, 6000)).scaleb(-2)
                book_id = rng.choice(self.book_ids)
                services.book_change_price(actor=None, book_id=book_id, price=price)
                self.position = head_position()
                time.sleep(1 / WRITES_PER_SECOND)
        finally:
            connections.close_all()


class Clients:
    """`count` threads sending `url_for()` one after another, pausing `think` seconds between."""

    def __init__(self, count: int, url_for, think: float) -> None:
        self.url_for, self.think = url_for, think
        self.results: list[tuple[float, float, int, str]] = []  # at, seconds, status, consistency
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(count)]

    def __enter__(self) -> "Clients":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def _run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                with urllib.request.urlopen(self.url_for(), timeout=30) as response:
                    response.read()
                    status, fresh = response.status, response.headers["X-Read-Consistency"]
            except urllib.error.HTTPError as error:
                status, fresh = error.code, ""
            except OSError:
                status, fresh = 0, ""
            self.results.append((started, time.monotonic() - started, status, fresh or ""))
            self.stop.wait(self.think)


def cpu_seconds(servers: dict) -> dict[str, float]:
    """CPU seconds used so far by each gunicorn server's workers (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    used = {}
    for name, server in servers.items():
        pid = server.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        total = 0
        for child in children:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        used[name] = total / tick
    return used


SETUPS = {
    # The production shape: plain reads on sync workers, waits on the live pool (ASGI).
    "gateway, live pool": {"queries": (4, False), "live": (1, True)},
    # Before the live pool: sync workers serve everything, waits included.
    "sync workers only": {"queries": (4, False)},
}


def run_setup(label: str, pools: dict) -> dict:
    from apps.read.catalog.models import BookListing
    from bench import run as bench
    from tests.processes import start_gateway, start_web
    from tests.readers import Readers, between, tally

    logdir = BENCH / ".waits-logs"
    logdir.mkdir(exist_ok=True)
    worker = bench.start("waits-worker", [
        str(bench.BIN / "celery"), "-A", "config", "worker", "--beat", "-Q",
        "projections,side-effects,rebuilds", "--concurrency", "2", "--loglevel", "WARNING",
        "--schedule", str(logdir / "beat-schedule"),
    ])  # fmt: skip
    servers = {
        name: start_web(env=dict(os.environ), logdir=logdir, name=name, workers=n, asgi=asgi)
        for name, (n, asgi) in pools.items()
    }
    upstreams = {"queries": [servers["queries"]], "commands": [servers["queries"]]}
    upstreams["live"] = [servers.get("live", servers["queries"])]
    gateway = start_gateway(pools=upstreams, logdir=logdir)
    base = gateway.url
    phases, clients, cpu = [], {}, {}
    try:
        bench.wait_for_projectors(f"{label}: projecting")
        book_ids = list(BookListing.objects.values_list("book_id", flat=True))
        writer = Writer(book_ids)
        writer.start()
        time.sleep(2)
        readers = Readers(base, book_ids, threads=READER_THREADS).start()

        time.sleep(WARM_UP_SECONDS)

        def phase(name: str, group: Clients | None) -> None:
            say(f"{label}: {name}")
            started, cpu_before = time.monotonic(), cpu_seconds(servers)
            if group is None:
                time.sleep(PHASE_SECONDS)
            else:
                with group:
                    time.sleep(PHASE_SECONDS)
                clients[name] = group.results
            ended, cpu_after = time.monotonic(), cpu_seconds(servers)
            cpu[name] = {
                pool: round((cpu_after[pool] - cpu_before[pool]) / (ended - started) * 100)
                for pool in cpu_after
            }
            phases.append((name, started, ended))

        rng = random.Random(3)
        phase("quiet", None)
        waiting = Clients(
            WAITERS,
            lambda: f"{base}/api/books/{rng.choice(book_ids)}/?min_position={writer.position}",
            THINK_SECONDS,
        )
        phase(f"{WAITERS} clients waiting for their writes", waiting)
        beyond = Clients(
            BEYOND_HEAD_CLIENTS,
            lambda: f"{base}/api/books/?min_position={writer.position + 10_000}",
            0,
        )
        phase(f"{BEYOND_HEAD_CLIENTS} clients sending positions beyond the head", beyond)
        reads = readers.stop()
        writer.stop.set()
        writer.join()
    finally:
        gateway.stop()
        for server in servers.values():
            server.stop()
        bench.stop_stack([worker])
    quiet_p50 = tally(between(reads, phases[0][1], phases[0][2]))["p50_ms"]
    rows = []
    for name, start, end in phases:
        figures = tally(between(reads, start, end))
        row = {"server": label, "phase": name, **figures, "cpu_pct": cpu[name]}
        row["p50_change_pct"] = round((figures["p50_ms"] / quiet_p50 - 1) * 100, 1)
        if name in clients:
            own = clients[name]
            row["client_requests"] = len(own)
            row["client_p50_ms"] = round(percentile([r[1] for r in own], 50) * 1000, 1)
            row["client_p99_ms"] = round(percentile([r[1] for r in own], 99) * 1000, 1)
            statuses = [r[2] for r in own]
            row["client_statuses"] = {str(s): statuses.count(s) for s in sorted(set(statuses))}
            row["client_fresh"] = sum(1 for r in own if r[3] == "fresh")
        rows.append(row)
    return {"rows": rows, "reads": [[r.at, r.seconds * 1000] for r in reads], "phases": phases}


def main() -> None:
    from bench import run as bench

    bench.use_database(DB_NAME, redis_db=7)
    from django.core.management import call_command

    say(f"seeding {BOOKS:,} books")
    call_command("bulk_seed_catalog", books=BOOKS, seed=BOOKS)
    results = {label: run_setup(label, pools) for label, pools in SETUPS.items()}
    (BENCH / "results-waits.json").write_text(json.dumps(results))
    write_report(results)
    say("done: see bench/WAITS.md and bench/waits.png")


def write_report(results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(11, 4.5), sharey=True)
    for ax, (name, run) in zip(axes, results.items(), strict=True):
        origin = run["phases"][0][1]
        ax.scatter([r[0] - origin for r in run["reads"]], [r[1] for r in run["reads"]], s=2)
        for (phase, start, end), colour in zip(
            run["phases"], ["white", "tab:green", "tab:orange"], strict=True
        ):
            ax.axvspan(start - origin, end - origin, color=colour, alpha=0.15, label=phase)
        ax.set_yscale("log")
        ax.set_title(f"{name}: the other readers' latency")
        ax.set_xlabel("seconds")
        ax.legend(loc="upper left", fontsize=7)
    axes[0].set_ylabel("read latency (ms)")
    fig.tight_layout()
    fig.savefig(BENCH / "waits.png", dpi=110)
    rows = "\n".join(
        f"| {r['server']} | {r['phase']} | {r['reads']} | {r['p50_ms']} | {r['p99_ms']} | "
        f"{r['p50_change_pct']:+.1f} % | {r.get('client_requests', '')} | "
        f"{r.get('client_p50_ms', '')} | {r.get('client_p99_ms', '')} | "
        f"{r.get('client_statuses', '')} | {r.get('client_fresh', '')} | "
        f"{', '.join(f'{pool} {pct} %' for pool, pct in r['cpu_pct'].items())} |"
        for run in results.values()
        for r in run["rows"]
    )
    (BENCH / "WAITS.md").write_text(
        f"""# Other reads while clients wait for their own writes

`make bench-waits` (bench/waits.py): {BOOKS:,} books, a writer changing {WRITES_PER_SECOND}
prices a second, {READER_THREADS} reader threads reading the catalog one request after another
(book details and first pages of lists). Each phase lasts {PHASE_SECONDS:.0f} s. In the second,
{WAITERS} clients read a book with `?min_position=` set to the last committed position (which
the projector is about to pass), pausing {THINK_SECONDS} s between reads; in the third,
{BEYOND_HEAD_CLIENTS} clients send positions beyond the head of the log without pausing. The
requests go through the nginx gateway (deploy/gateway.conf.template): in front of the production
shape (plain reads on 4 sync workers, waits on a live pool of 1 uvicorn worker running the ASGI
application, which hands each read it has waited for back to the sync workers through the
gateway), then in front of 4 sync workers serving everything, as before the live pool.
Everything runs on this one 2-core machine. "Web CPU" is what each pool's worker processes used
during the phase (/proc), in % of one core.

| server | phase | other reads | p50 ms | p99 ms | p50 vs quiet | client requests \
| client p50 ms | client p99 ms | client statuses | fresh | web CPU (% of a core) |
|---|---|---|---|---|---|---|---|---|---|---|---|
{rows}

![the other readers' latency in each phase](waits.png)
"""
    )


if __name__ == "__main__":
    main()
