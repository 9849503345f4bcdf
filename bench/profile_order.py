"""Where an order's CPU goes, in one process (`python -m bench.profile_order [--cprofile]`).

Places orders through the API with Django's test client and, after each (or after every N
with `--every N`), runs the catch-ups their wake-ups queue, as the worker's tasks would
(without Celery's own cost). Prints CPU time and SQL statements per order for the request and
for each projector; with `--cprofile`, the functions that took the most time in each. A tool
for finding what to make cheaper: the budget itself is measured through real servers by
`make bench-cost`.
"""

import argparse
import cProfile
import pstats
import time
from collections import Counter, defaultdict

from bench.run import say

DB_NAME = "bookstore_profile"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument("--sql", action="store_true", help="print each part's statements once")
    parser.add_argument(
        "--every",
        type=int,
        default=1,
        help="run the woken catch-ups after every N orders, as a stream of orders shares them "
        "(settings.CQRS_WAKE_INTERVALS)",
    )
    args = parser.parse_args()

    from bench import run as bench

    bench.ENV["CQRS_SWEEP_SECONDS"] = "5"
    bench.use_database(DB_NAME, redis_db=9)
    from django.core.management import call_command
    from django.db import connections, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from apps.cqrs import dispatch, tasks
    from apps.cqrs.projectors import registry

    call_command("bulk_seed_catalog", books=2000, seed=1, verbosity=0)
    setup = bench.prepare_customers(1)
    import json

    token = json.loads(setup.read_text())["tokens"][0]
    books = bench.stocked_books(50, 100_000)
    for projector in registry.all():
        tasks.project.run(projector.name)

    woken: list[tuple] = []

    def record_wake(args=(), kwargs=None, **options):  # stands in for the broker
        woken.append(tuple(args))

    tasks.project_slot.apply_async = record_wake
    client = Client(HTTP_AUTHORIZATION=f"Token {token}", HTTP_HOST="localhost")
    cpu: defaultdict[str, float] = defaultdict(float)
    queries: Counter[str] = Counter()
    shown: set[str] = set()
    profiles = {}

    def run(part: str, fn) -> None:
        # CPU time, not wall time: waits for PostgreSQL and Redis are not this process's cost.
        profiler = None
        if args.cprofile:
            profiler = profiles.setdefault(part, cProfile.Profile(time.process_time))
        with (
            CaptureQueriesContext(connections["default"]) as write,
            CaptureQueriesContext(connections["read"]) as read,
        ):
            started = time.process_time()
            if profiler:
                profiler.enable()
            fn()
            if profiler:
                profiler.disable()
            cpu[part] += time.process_time() - started
        statements = [q["sql"] for q in write.captured_queries]
        if connections["read"] is not connections["default"]:
            statements += [q["sql"] for q in read.captured_queries]
        queries[part] += len(statements)
        if args.sql and part not in shown:
            shown.add(part)
            print(f"--- {part}")
            for sql in statements:
                print("   ", sql[:160])

    say(f"{args.orders} orders")
    for n in range(args.orders):
        body = {
            "lines": [{"book_id": books[n % len(books)], "quantity": 1}],
            "shipping_address": "1 Bench Road",
        }
        dispatch.cache.clear()  # each order queues its wake-ups

        def place(body=body):
            response = client.post(
                "/api/commands/place-order/", body, content_type="application/json"
            )
            assert response.status_code == 201, response.content

        run("web: place order", place)
        if (n + 1) % args.every and n + 1 < args.orders:
            continue
        slots: defaultdict[tuple, set[str]] = defaultdict(set)
        for queue, index, names in woken:
            slots[queue, index].update(names)
        woken.clear()
        for (queue, index), names in slots.items():
            run(
                f"worker: {queue} {index}",
                lambda q=queue, i=index, w=names: tasks.project_slot.run(q, i, sorted(w)),
            )
        reset_queries()
    total_worker = sum(v for k, v in cpu.items() if k.startswith("worker"))
    print(f"{'part':40} {'CPU ms/order':>12} {'SQL/order':>10}")
    for part in sorted(cpu, key=lambda p: -cpu[p]):
        per_order = cpu[part] * 1000 / args.orders
        print(f"{part:40} {per_order:12.2f} {queries[part] / args.orders:10.1f}")
    print(f"{'worker, all projectors':40} {total_worker * 1000 / args.orders:12.2f}")
    for part, profiler in profiles.items():
        print(f"\n===== {part}")
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(r"apps/|config/", 40)


if __name__ == "__main__":
    main()
