"""Where a place-order request's CPU goes in gunicorn (`python -m bench.web_profile`).

bench-cost's stack (gunicorn with 2 sync workers, one Celery worker) on a small catalog of its
own. Each gunicorn worker samples its Python stack on CPU time (bench/gunicorn_sampling.py)
while one client places orders through the API, one after another. Prints the share of the
samples by the package of the innermost Python frame (a C call counts for the frame that made
it: psycopg's for a round trip to PostgreSQL), and the functions of the project and the
libraries that held the most, within themselves and with what they called.

Beside bench/profile_order.py, which profiles the request in process under cProfile: this
sees the server whose CPU the budget counts, gunicorn's own part included (a tenth of it), and
the sampling costs the requests next to nothing where cProfile made them three to five times
slower. For what to make cheaper; the budget itself is measured by `make bench-cost`.
"""

import argparse
import os
import re
import tempfile
from collections import Counter
from pathlib import Path

from bench.run import ROOT, say

DB_NAME = "bookstore_profile"
_PATH = re.compile(r"\((.*)\)$")


def package(frame: str) -> str:
    """What a frame ("function (path)") belongs to: a directory of the project (apps/cqrs), a
    library (redis; Django's and DRF's by their first subpackage), or the standard library."""
    match = _PATH.search(frame)
    path = match.group(1) if match else "?"
    if path.startswith(str(ROOT)):
        return "/".join(Path(path).relative_to(ROOT).parts[:2])
    if path.startswith(("/", "<")):
        return f"python: {Path(path).stem}" if path.startswith("/") else f"python: {path}"
    parts = Path(path).parts
    if parts[0] in {"django", "rest_framework"} and len(parts) > 2:
        return "/".join(parts[:2])
    return parts[0]


def read_samples(directory: Path) -> Counter[tuple[str, ...]]:
    stacks: Counter[tuple[str, ...]] = Counter()
    for path in directory.glob("*.txt"):
        for line in path.read_text().splitlines():
            stack, count = line.rsplit(" ", 1)
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def report(stacks: Counter[tuple[str, ...]], *, orders: int, top: int) -> None:
    total = sum(stacks.values())
    if not total:
        raise SystemExit("No samples: did the workers answer the orders?")
    by_package: Counter[str] = Counter()
    own: Counter[str] = Counter()
    within: Counter[str] = Counter()
    for stack, count in stacks.items():
        by_package[package(stack[-1])] += count
        own[stack[-1]] += count
        for frame in set(stack):
            within[frame] += count
    print(f"\n{total:,} samples over about {orders} orders\n")
    print("by package of the innermost Python frame")
    for name, count in by_package.most_common(top):
        print(f"  {100 * count / total:5.1f} %  {name}")
    print("\nfunctions, within themselves")
    for frame, count in own.most_common(top):
        print(f"  {100 * count / total:5.1f} %  {frame}")
    print("\nfunctions of the project, with what they called")
    project = [
        (f, c)
        for f, c in within.items()
        if str(ROOT) in f and not any(part in f for part in ("/bench/", "/.venv/"))
    ]
    for frame, count in sorted(project, key=lambda fc: -fc[1])[:top]:
        print(f"  {100 * count / total:5.1f} %  {frame.replace(str(ROOT) + '/', '')}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=600)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--samples", type=Path, help="keep each worker's collapsed stacks here (for flame graphs)"
    )
    args = parser.parse_args()

    from bench import cost, gunicorn_sampling
    from bench import run as bench

    bench.ENV["CQRS_SWEEP_SECONDS"] = "5"
    bench.use_database(DB_NAME, redis_db=9)
    from django.core.management import call_command

    call_command("bulk_seed_catalog", books=2000, seed=1, verbosity=0)
    setup = bench.prepare_customers(1)
    books = bench.stocked_books(50, 100_000)
    with tempfile.TemporaryDirectory(prefix="bench-samples-") as temporary:
        directory = args.samples or Path(temporary)
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.glob("*.txt"):
            old.unlink()
        os.environ["BENCH_SAMPLES_DIR"] = str(directory)
        sampling = str(ROOT / "bench" / "gunicorn_sampling.py")
        web, worker = cost.start(bench, gunicorn_args=("--config", sampling))
        try:
            bench.wait_for_projectors("projecting the catalog")
            say(f"{args.orders} orders, one client")
            # Each worker starts sampling after its first WARM_UP requests.
            warm_up = cost.WEB_WORKERS * gunicorn_sampling.WARM_UP
            bench.driver("closed", setup, books, concurrency=1, requests=warm_up + args.orders)
        finally:
            bench.stop_stack([web, worker])  # the workers write their samples as they exit
        report(read_samples(directory), orders=args.orders, top=args.top)


if __name__ == "__main__":
    main()
