"""What a Celery task costs the worker when it does nothing (`python -m bench.task_cost`).

Starts the worker as `make bench-cost` does (prefork with 2 processes and beat; `--pool solo`
or `--pool threads` to compare). Sends Celery's built-in `celery.accumulate`, which returns its
argument, to the projections queue: one task every 15 ms, as a stream of commands would wake a
slot. Reads the worker tree's CPU from /proc before and after. The same reading over an idle
stretch of the same length is printed beside it. Decision 0015 is why this matters: each task
costs about as much as issue 15's whole budget for an order.
"""

import argparse
import tempfile
import time
from pathlib import Path

from bench.cost import snapshot
from bench.run import BIN, say

GAP_SECONDS = 0.015


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pool", default="prefork", choices=["prefork", "solo", "threads"])
    args = parser.parse_args()

    from bench import run as bench

    bench.ENV["CQRS_SWEEP_SECONDS"] = "5"  # production's default, not the benchmarks' 1 s
    bench.use_database("bookstore_task_cost", redis_db=7)
    from config.celery import app

    worker = bench.start(
        "worker",
        [str(BIN / "celery"), "-A", "config", "worker", "--beat", "-Q",
         "projections,side-effects,rebuilds", "--concurrency", "2", "--loglevel", "WARNING",
         "--pool", args.pool, "--schedule", str(Path(tempfile.gettempdir()) / "bench-task-beat")],
    )  # fmt: skip
    try:
        time.sleep(5)  # started and idle
        for r in range(args.rounds):
            say(f"round {r + 1}/{args.rounds}: {args.tasks} tasks, one every {GAP_SECONDS}s")
            before = snapshot(worker.pid, worker.pid)["worker"]
            started = time.perf_counter()
            for i in range(args.tasks):
                app.send_task("celery.accumulate", args=(i,), queue="projections")
                time.sleep(GAP_SECONDS)
            time.sleep(2)  # the last ones run
            busy = snapshot(worker.pid, worker.pid)["worker"] - before
            elapsed = time.perf_counter() - started
            before = snapshot(worker.pid, worker.pid)["worker"]
            time.sleep(elapsed)
            idle = snapshot(worker.pid, worker.pid)["worker"] - before
            print(
                f"  {args.pool}: {busy * 1000 / args.tasks:.2f} ms of worker CPU per task "
                f"({idle * 1000 / args.tasks:.2f} idle over as long)",
                flush=True,
            )
    finally:
        bench.stop_stack([worker])


if __name__ == "__main__":
    main()
