"""The catalog as it grows: lists, details, search and suggestions at 10,000, 100,000 and
1,000,000 books (`make bench-catalog`; `--quick`: 10,000 and 30,000).

The benchmark's own database and Redis database; the bulk seeder adds books between sizes and
the projectors build the listing from its events. At each size: wrk against gunicorn (4 sync
workers, DEBUG off) for each read, cached (a) and uncached (b), in shuffled rounds, beside the
constant-JSON ceiling (d); the server time of search and suggestions measured in process (the
selector and its query, median of 15 calls); and PostgreSQL's plan for both. Writes
bench/results-catalog.json, bench/CATALOG.md and bench/catalog.png.
"""

import argparse
import json
import random
import statistics
import time

from bench.run import BENCH, run_cells, say

DB_NAME = "bookstore_catalog"
SIZES = {"full": [10_000, 100_000, 1_000_000], "quick": [10_000, 30_000]}
ROUNDS, SECONDS = 3, 5
SEARCH = "q=river&availability=in_stock"
CELLS = [
    ("list", "a", "/api/books/"),
    ("list", "b", "/bench/uncached/books/"),
    ("detail", "a", "/api/books/"),
    ("detail", "b", "/bench/uncached/books/"),
    ("search+filter", "a", f"/api/books/?{SEARCH}"),
    ("search+filter", "b", f"/bench/uncached/books/?{SEARCH}"),
    ("typo search", "b", "/bench/uncached/books/?q=lanturn"),
    ("suggestions", "b", "/api/books/suggestions/?q=lan"),
    ("constant", "d", "/bench/constant/"),
]
VARIANTS = {"a": "cached", "b": "uncached", "d": "ceiling"}
# Server time, in process: searches and what a search box sends as someone types.
TIMED_SEARCHES = ["river", "hollow harbour", "lanturn", "hollw harbor", "9795000000017"]
TIMED_SUGGESTIONS = ["lan", "the", "hollow", "riv", "kestrel b", "ada abara", "glassblower of"]
# Rare in titles and made of common trigrams: their look through the trigram index costs most.
TIMED_SUGGESTIONS += ["bright letter comes", "orchard of marrow", "zzqx"]


def server_times() -> dict:
    """Median and p90 ms of the selectors alone, as a request runs them (first page)."""
    from apps.read.catalog import selectors

    def timed(call) -> dict:
        runs = []
        for _ in range(15):
            started = time.perf_counter()
            call()
            runs.append((time.perf_counter() - started) * 1000)
        runs.sort()
        return {"p50": statistics.median(runs), "p90": runs[int(len(runs) * 0.9) - 1]}

    times = {}
    for q in TIMED_SEARCHES:
        # The selector too: it asks whether full text finds anything, and corrects if not.
        def search(q=q) -> list:
            return first_page(selectors.book_listings(), q)

        times[f"search {q!r}"] = timed(search)
    for q in TIMED_SUGGESTIONS:
        times[f"suggest {q!r}"] = timed(lambda q=q: selectors.book_suggestions(q=q))
    return times


def first_page(books, q: str) -> list:
    """A search's first page in relevance order, as the API asks for it (a page and one more)."""
    from apps.read.catalog import selectors

    query = selectors.search_query(books, q=q)
    return selectors.ranked_page(books, query=query, start=0, size=51)


def plans() -> dict:
    """EXPLAIN ANALYZE of the statements of the search's first page and of a suggestion."""
    from django.db import connections

    from apps.read.catalog import selectors

    in_stock = selectors.book_listings().filter(availability="in_stock")
    with connections["read"].cursor() as cursor:
        cursor.execute(f"EXPLAIN ANALYZE {selectors.NEAREST_WORDS_SQL}", [["lanturn"]])
        nearest = "\n".join(row[0] for row in cursor.fetchall())
    return {
        "search+filter": explained(lambda: first_page(in_stock, "river")),
        "suggestions": explained(lambda: selectors.book_suggestions(q="ada abara")),
        "typo correction": nearest,
    }


def explained(call) -> str:
    """EXPLAIN ANALYZE of each ordered SELECT `call` runs, with the planner settings it had
    set when it ran them (the check for any match runs with seq scans off: not shown)."""
    from django.db import connections
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connections["read"]) as queries:
        call()
    plans = []
    with connections["read"].cursor() as cursor:
        for sql in (q["sql"] for q in queries.captured_queries):
            if sql.startswith(("SET ", "RESET ")):
                cursor.execute(sql)
            elif "ORDER BY" in sql:
                cursor.execute(f"EXPLAIN ANALYZE {sql}")
                plans.append(f"{sql}\n\n" + "\n".join(row[0] for row in cursor.fetchall()))
    return "\n\n".join(plans)


def measure(size: int, rng: random.Random, rounds: int, seconds: float) -> list[dict]:
    from apps.read.catalog.models import BookListing

    ids = list(BookListing.objects.values_list("book_id", flat=True)[:200_000])
    hot = rng.sample(ids, min(1000, len(ids)))
    cells = [
        {"endpoint": e, "variant": v, "path": p, "hot_ids": hot if e == "detail" else []}
        for e, v, p in CELLS
    ]
    # The warm-up also asks each search twice: from then on its first page is cached.
    return run_cells(cells, size=size, rounds=rounds, seconds=seconds, rng=rng)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 and 30,000 books, 1 round")
    parser.add_argument(
        "--server-times",
        action="store_true",
        help="only measure server times and plans again on the database as the last run left "
        "it (its largest size), after migrating it, and rewrite the report",
    )
    args = parser.parse_args()
    from bench import run as bench

    # The selectors are timed in this process as a web process runs them (decision 0011).
    bench.ENV["DATABASE_PREPARED_STATEMENTS"] = "0"
    if args.server_times:
        return server_times_again(bench)

    bench.use_database(DB_NAME, redis_db=7)
    from django.core.management import call_command
    from django.db import connection, connections

    sizes = SIZES["quick" if args.quick else "full"]
    rounds, seconds = (1, 2) if args.quick else (ROUNDS, SECONDS)
    rng = random.Random(2026)
    results: dict = {"sizes": [], "reads": [], "rounds": rounds, "seconds": seconds}
    started = time.perf_counter()
    processes = bench.start_stack()
    try:
        have = 0
        for size in sizes:
            say(f"seeding to {size:,} books")
            call_command("bulk_seed_catalog", books=size - have, seed=size, verbosity=0)
            have = size
            bench.wait_for_projectors("projecting")
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE")
            connections.close_all()
            say(f"server time and plans at {size:,} books")
            entry = {"size": size, "server_ms": server_times(), "plans": plans()}
            results["sizes"].append(entry)
            say(f"reads at {size:,} books")
            results["reads"] += measure(size, rng, rounds, seconds)
    finally:
        bench.stop_stack(processes)
    results["elapsed_s"] = time.perf_counter() - started
    (BENCH / "results-catalog.json").write_text(json.dumps(results, indent=1))
    write_report(results)
    say(f"done in {results['elapsed_s'] / 60:.1f} min: see bench/CATALOG.md")


def server_times_again(bench) -> None:
    bench.use_database(DB_NAME, redis_db=7, fresh=False)  # migrates it
    from django.db import connection

    results = json.loads((BENCH / "results-catalog.json").read_text())
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE read_catalog_booklisting")
    largest = results["sizes"][-1]
    say(f"server times and plans again at {largest['size']:,} books")
    largest["server_ms_before"] = largest["server_ms"]
    largest["server_ms"], largest["plans"] = server_times(), plans()
    results["server_times_again"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    (BENCH / "results-catalog.json").write_text(json.dumps(results, indent=1))
    write_report(results)


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def write_report(results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reads = results["reads"]
    sizes = [entry["size"] for entry in results["sizes"]]
    cell = {(c["endpoint"], c["variant"], c["size"]): c["runs"] for c in reads}
    names = [(e, v) for e, v, _ in CELLS]

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for endpoint, variant in names:
        if endpoint == "constant":
            continue
        p50 = [_median(cell[endpoint, variant, s], "p50") for s in sizes]
        left.plot(sizes, p50, marker="o", label=f"{endpoint} ({VARIANTS[variant]})")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("books")
    left.set_ylabel("p50 ms (wrk, 16 connections)")
    left.set_title("Latency as the catalog grows")
    left.legend(fontsize=7)
    for label in sorted({k for e in results["sizes"] for k in e["server_ms"]}):
        measured = [e for e in results["sizes"] if label in e["server_ms"]]
        right.plot(
            [e["size"] for e in measured],
            [e["server_ms"][label]["p50"] for e in measured],
            marker="o",
            label=label,
        )
    right.axhline(20, color="grey", linestyle=":", label="suggestions target (20 ms)")
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("books")
    right.set_ylabel("server time, median ms (in process)")
    right.set_title("Search and suggestions, one request alone")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(BENCH / "catalog.png", dpi=110)

    table = []
    for size in sizes:
        for endpoint, variant in names:
            runs = cell[endpoint, variant, size]
            errors = sum(r["non_2xx"] + r["socket_errors"] for r in runs)
            table.append(
                f"| {size:,} | {endpoint} | {VARIANTS[variant]} | {_median(runs, 'rps'):,.0f} | "
                f"{_median(runs, 'p50'):.1f} | {_median(runs, 'p99'):.1f} | {errors} |"
            )
    ratios = []
    for size in sizes:

        def rps(endpoint: str, variant: str, size: int = size) -> float:
            return _median(cell[endpoint, variant, size], "rps")

        ratios.append(
            f"| {size:,} | {rps('list', 'b') / rps('list', 'a'):.0%} | "
            f"{rps('detail', 'b') / rps('detail', 'a'):.0%} | "
            f"{rps('search+filter', 'a') / rps('constant', 'd'):.0%} | "
            f"{rps('search+filter', 'b') / rps('constant', 'd'):.0%} |"
        )

    def timing(times: dict, label: str) -> str:
        return f"{times[label]['p50']:.1f} ({times[label]['p90']:.1f})" if label in times else "–"

    server = []
    before = results["sizes"][-1].get("server_ms_before")
    labels = list(results["sizes"][-1]["server_ms"])
    for label in labels:
        row = " | ".join(timing(e["server_ms"], label) for e in results["sizes"])
        earlier = f" | {timing(before, label)}" if before else ""
        server.append(f"| {label} | {row}{earlier} |")
    again = ""
    if before:
        again = (
            f"\nThe last column: {sizes[-1]:,} books as first measured. The figures beside it "
            f"were measured again on {results['server_times_again']} (`make bench-catalog "
            "BENCH_ARGS=--server-times`), with the code of that day, on the "
            "same database.\n"
        )
    first, last = sizes[0], sizes[-1]
    growth = {
        variant: _median(cell["search+filter", variant, last], "p50")
        / _median(cell["search+filter", variant, first], "p50")
        for variant in ("a", "b")
    }
    largest = results["sizes"][-1]
    typo = ""
    if "typo correction" in largest["plans"]:
        typo = (
            "\nA misspelling's correction (`lanturn`, docs/decisions/0010):\n\n```\n"
            f"{largest['plans']['typo correction']}\n```\n"
        )
    (BENCH / "CATALOG.md").write_text(
        f"""# The catalog as it grows

`make bench-catalog` (bench/catalog.py), in {results["elapsed_s"] / 60:.1f} minutes. Gunicorn
with 4 sync workers, a Celery worker, PostgreSQL and Redis on one 2-core machine; wrk with 2
threads and 16 connections, {results["seconds"]} s a cell, {results["rounds"]} shuffled rounds
(medians). Cached (a): through the Redis cache as clients get it; a search's first page is
cached from its second request. Uncached (b): the same view with the cache off
(`/bench/uncached/`), serving the documents the projector stores. Ceiling (d): a constant
JSON body through the same middleware. Search: `?{SEARCH}`.

![growth](catalog.png)

## Requests

| books | read | variant | requests/s | p50 ms | p99 ms | errors |
|---:|---|---|---:|---:|---:|---:|
{chr(10).join(table)}

## Ratios

Requests/s of one read over another: uncached (b) over cached (a), the target for lists 50 %
or more; searches over the constant-JSON ceiling (d), the target when cached 30 % or more.

| books | list, b/a | detail, b/a | search, a/d | search, b/d |
|---:|---:|---:|---:|---:|
{chr(10).join(ratios)}

Search+filter p50 at {last:,} books against {first:,}: cached {growth["a"]:.2f}×,
uncached {growth["b"]:.2f}×.

## Server time, in process (median ms, p90 in brackets; the selector and its query, first page)

| call | {" | ".join(f"{s:,}" for s in sizes)} |{" before |" if before else ""}
|---|{"---:|" * (len(sizes) + bool(before))}
{chr(10).join(server)}
{again}
## Plans at {largest["size"]:,} books

Search and filter (`river`, in stock), first page: each statement `ranked_page` ran, tier by
tier (docs/decisions/0013):

```
{largest["plans"]["search+filter"]}
```

A suggestion's statements (`ada abara`): its authors, then its titles among the most popular
books, then among all of them:

```
{largest["plans"]["suggestions"]}
```
{typo}"""
    )


if __name__ == "__main__":
    main()
