"""Reading the catalog during a full rebuild of its listing (`make bench-rebuild`).

At 20,000 books, under gunicorn with a Celery worker projecting live, reader threads ask for
book details and first pages of lists (cached and uncached) while a writer changes prices:
first quietly, then through `rebuild_read_models --projector catalog.book_listing` (blue-green:
built beside the live table, then switched), then through the old rebuild in place for
comparison. Counts every answer that is not a 200, every first page with fewer than 50 books,
every 404 for a book that exists, and the readers' latency in each phase. Writes
bench/results-rebuild.json, bench/REBUILD.md and bench/rebuild.png.

It uses a database of its own (bookstore_rebuild), so the other benchmarks' data stays as it is.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
DB_NAME = "bookstore_rebuild"
QUIET_SECONDS = 10.0
READER_THREADS = 8
WRITES_PER_SECOND = 20


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def change_prices(book_ids: list[int], stop: threading.Event, changed: list[float]) -> None:
    from django.db import connections

    from apps.write.catalog import services

    rng = random.Random(7)
    try:
        while not stop.is_set():
            price = Decimal(rng.randrange(500, 6000)).scaleb(-2)
            services.book_change_price(actor=None, book_id=rng.choice(book_ids), price=price)
            changed.append(time.monotonic())
            time.sleep(1 / WRITES_PER_SECOND)
    finally:
        connections.close_all()


def phase(name: str, run) -> dict:
    """Run `run()` while the readers read; returns its window and duration."""
    say(name)
    started = time.monotonic()
    run()
    ended = time.monotonic()
    return {"name": name, "start": started, "end": ended, "seconds": ended - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--books", type=int, default=20_000)
    args = parser.parse_args()
    from bench import run as bench

    bench.use_database(DB_NAME, redis_db=6)
    from django.core.management import call_command
    from django.db import connection

    from apps.cqrs import runtime
    from apps.cqrs.projectors import registry
    from apps.read.catalog.models import BookListing
    from tests.readers import Readers, between, tally

    processes = bench.start_stack()
    try:
        say(f"seeding {args.books:,} books (bulk path: same rows and events as the services)")
        call_command("bulk_seed_catalog", books=args.books, seed=args.books)
        bench.wait_for_projectors("projecting")
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        book_ids = list(BookListing.objects.values_list("book_id", flat=True))
        readers = Readers(bench.BASE, book_ids, threads=READER_THREADS).start()
        stop, writes = threading.Event(), []
        writer = threading.Thread(target=change_prices, args=(book_ids, stop, writes))
        writer.start()
        phases = [phase("quiet", lambda: time.sleep(QUIET_SECONDS))]
        rebuild = [sys.executable, "manage.py", "rebuild_read_models", "-v", "0"]
        rebuild += ["--projector", "catalog.book_listing"]
        phases.append(
            phase(
                "blue-green rebuild",
                lambda: subprocess.run(rebuild, cwd=ROOT, env=os.environ, check=True),
            )
        )
        time.sleep(3)
        listing = registry.get("catalog.book_listing")
        phases.append(phase("rebuild in place (before)", lambda: runtime.rebuild(listing)))
        time.sleep(3)
        stop.set()
        writer.join()
        reads = readers.stop()
        bench.wait_for_projectors("after the rebuilds")
    finally:
        bench.stop_stack(processes)
    origin = phases[0]["start"]
    results = {
        "books": args.books,
        "reader_threads": READER_THREADS,
        "price_changes": len(writes),
        "phases": [
            {
                "name": p["name"],
                "seconds": round(p["seconds"], 2),
                **tally(between(reads, p["start"], p["end"])),
            }
            for p in phases
        ],
        "reads": [
            [round(r.at - origin, 3), round(r.seconds * 1000, 2), r.status, r.short, r.missing]
            for r in reads
        ],
        "windows": [[p["name"], p["start"] - origin, p["end"] - origin] for p in phases],
    }
    (BENCH / "results-rebuild.json").write_text(json.dumps(results))
    write_report(results)
    say("done: see bench/REBUILD.md and bench/rebuild.png")


def write_report(results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5))
    ok = [r for r in results["reads"] if r[2] == 200 and not r[3]]
    bad = [r for r in results["reads"] if r[2] != 200 or r[3]]
    ax.scatter([r[0] for r in ok], [r[1] for r in ok], s=2, alpha=0.4, label="whole answer")
    ax.scatter(
        [r[0] for r in bad],
        [r[1] for r in bad],
        s=12,
        color="red",
        label="error, short first page or missing book",
    )
    colours = {"blue-green rebuild": "tab:green", "rebuild in place (before)": "tab:orange"}
    for name, start, end in results["windows"]:
        if name in colours:
            ax.axvspan(start, end, color=colours[name], alpha=0.15, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("seconds")
    ax.set_ylabel("read latency (ms)")
    ax.set_title(f"Catalog reads during a rebuild of the listing, {results['books']:,} books")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(BENCH / "rebuild.png", dpi=110)
    rows = "\n".join(
        f"| {p['name']} | {p['seconds']:.1f} | {p['reads']} | {p['not_200']} | "
        f"{p['short_first_pages']} | {p['missing_books']} | {p['p50_ms']} | {p['p99_ms']} |"
        for p in results["phases"]
    )
    (BENCH / "REBUILD.md").write_text(
        f"""# Reading the catalog during a rebuild of its listing

`make bench-rebuild` (bench/rebuild.py): {results["books"]:,} books, gunicorn and a Celery worker
projecting live, {results["reader_threads"]} reader threads (book details and the first pages of
five lists, three of them cached in Redis, two read from the table every time), and a writer
changing prices throughout ({results["price_changes"]} changes). The same readers and counts as
`tests/faults/test_rebuild_while_serving.py`.

| phase | s | reads | not 200 | short first pages | 404s, book exists | p50 ms | p99 ms |
|---|---|---|---|---|---|---|---|
{rows}

"Rebuild in place (before)" is how `rebuild_read_models` worked until the blue-green build:
empty the table, then replay into it. It runs last, on the same data, for comparison.

![latency of each read over time](rebuild.png)
"""
    )


if __name__ == "__main__":
    main()
