"""The benchmark suite: `make bench` (full) and `make bench-quick`.

It builds its own database (bookstore_bench) and Redis database, starts the stack the way
production runs it (gunicorn with DEBUG off, a Celery worker with beat), drives load from
separate processes (wrk for reads, bench/driver.py for commands), and writes bench/REPORT.md
with PNG plots beside it. Every figure is the median of interleaved rounds, with min to max.
"""

import argparse
import json
import logging
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
BIN = Path(sys.executable).parent
PORT = 8765
BASE = f"http://127.0.0.1:{PORT}"
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_NAME = "bookstore_bench"
ENV = {
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
    "REDIS_URL": "redis://127.0.0.1:6379/5",
    "DJANGO_SECRET_KEY": "bench-only-secret-key-not-for-production-use-0123456789",
    "DJANGO_DEBUG": "0",
    "DJANGO_HTTPS": "0",
    "DJANGO_ROOT_URLCONF": "bench.urls",
    "CUSTOMER_COMMAND_RATE": "1000000/min",
    "CQRS_SWEEP_SECONDS": "1",
    "DJANGO_EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
    "LOG_LEVEL": "WARNING",
}
PROFILES = {
    "quick": {
        "sizes": [10_000, 60_000],
        "rounds": 3,
        "seconds": 1,
        "orders": 100,
        "hot_orders": 90,
        "lag_seconds": 4,
    },
    "full": {
        "sizes": [10_000, 100_000, 1_000_000],
        "rounds": 3,
        "seconds": 5,
        "orders": 1000,
        "hot_orders": 400,
        "lag_seconds": 20,
    },
}
GUNICORN_WORKERS = 4
WRK_THREADS, WRK_CONNECTIONS = 2, 16
HOT_SET = 1000
LAG_RATES = [25, 50, 100]


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- the stack -------------------------------------------------------------------------------


def fresh_database() -> None:
    import psycopg
    import redis

    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            [DB_NAME],
        )
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME}")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    redis.Redis.from_url(ENV["REDIS_URL"]).flushdb()


def use_database(name: str, *, redis_db: int, fresh: bool = True) -> None:
    """Point this process and the servers it starts at database `name` (made afresh unless
    `fresh` is false) and Redis database `redis_db` (a benchmark's own, so the others' data
    stays as it is), migrated, with Django set up."""
    global DB_NAME
    DB_NAME = name
    env = {
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{name}",
        "REDIS_URL": f"redis://127.0.0.1:6379/{redis_db}",
    }
    ENV.update(env)
    os.environ.update(ENV)
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if fresh:
        say(f"fresh database {name}")
        fresh_database()
    import django

    django.setup()
    # The servers log each event as production does (its CPU is part of an order's); this
    # process's own commands, stocking thousands of books, would only flood the terminal.
    logging.getLogger("cqrs.events").setLevel(logging.WARNING)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def start(name: str, argv: list[str]) -> subprocess.Popen:
    log = open(BENCH / f".{name}.log", "w")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen(argv, cwd=ROOT, env=os.environ, stdout=log, stderr=subprocess.STDOUT)


def start_stack(*, asgi: bool = False) -> list[subprocess.Popen]:
    """A Celery worker with beat, and gunicorn serving the project as production's query pool
    does (sync workers, WSGI), or as its live pool does (uvicorn workers, ASGI) with `asgi`."""
    worker = start(
        "worker",
        [
            str(BIN / "celery"),
            "-A",
            "config",
            "worker",
            "--beat",
            "-Q",
            "projections,side-effects,rebuilds",
            "--concurrency",
            "2",
            "--loglevel",
            "WARNING",
            "--schedule",
            str(Path(tempfile.gettempdir()) / "bench-celerybeat-schedule"),
        ],
    )
    web = start(
        "gunicorn",
        [
            str(BIN / "gunicorn"),
            *(
                ["config.asgi:application", "--worker-class", "uvicorn_worker.UvicornWorker"]
                if asgi
                else ["config.wsgi:application"]
            ),
            "--bind",
            f"127.0.0.1:{PORT}",
            "--workers",
            str(GUNICORN_WORKERS),
        ],
    )
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{BASE}/bench/constant/", timeout=1)
            return [web, worker]
        except OSError:
            time.sleep(0.2)
    stop_stack([web, worker])
    raise SystemExit("gunicorn did not start; see bench/.gunicorn.log")


def stop_stack(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            # A worker in warm shutdown waits for its running catch-ups; the figures are in.
            process.kill()
            process.wait()


def wait_for_projectors(label: str) -> float:
    """Wait until every projector has reached the head; returns the seconds it took."""
    from apps.cqrs import runtime

    started = time.perf_counter()
    while True:
        rows = runtime.status()
        behind = sum(r.lag_events for r in rows)
        errors = [f"{r.name}: {r.last_error}" for r in rows if r.last_error]
        if errors:
            raise SystemExit("A projector failed: " + "; ".join(errors))
        print(f"\r  {label}: {behind} events still to project   ", end="", flush=True)
        if behind == 0:
            print()
            return time.perf_counter() - started
        time.sleep(0.5)


# --- reads -----------------------------------------------------------------------------------


def deep_page_url(page: int) -> str:
    """The read API's URL for page `page`, with the cursor a client holds after walking there."""
    from rest_framework.pagination import Cursor

    from apps.read.catalog.api import BookCursorPagination
    from apps.read.catalog.models import BookListing

    last = BookListing.objects.order_by("title", "book_id").values_list("title", flat=True)[
        (page - 1) * 50 - 1
    ]
    paginator = BookCursorPagination()
    paginator.base_url = "/api/books/"
    return paginator.encode_cursor(Cursor(offset=0, reverse=False, position=last))


def read_cells(size: int, hot_ids: list[int]) -> list[dict]:
    pages = size // 50
    deep = min(1000, pages)
    search = "?q=river&availability=in_stock"
    naive_search = "?search=river&availability=in_stock"
    cells = []
    for endpoint, a, b, c in [
        ("list", "/api/books/", "/bench/uncached/books/", "/bench/naive/books/"),
        (
            "search+filter",
            f"/api/books/{search}",
            f"/bench/uncached/books/{search}",
            f"/bench/naive/books/{naive_search}",
        ),
        ("detail", "/api/books/", "/bench/uncached/books/", "/bench/naive/books/"),
    ]:
        for variant, path in (("a", a), ("b", b), ("c", c)):
            cells.append(
                {
                    "endpoint": endpoint,
                    "variant": variant,
                    "path": path,
                    "ids": endpoint == "detail",
                }
            )
    cells.append({"endpoint": f"deep page {deep}", "variant": "b", "path": deep_page_url(deep)})
    cells.append(
        {
            "endpoint": f"deep page {deep}",
            "variant": "c",
            "path": f"/bench/naive/books/?page={deep}",
        }
    )
    cells.append({"endpoint": "constant", "variant": "d", "path": "/bench/constant/"})
    for cell in cells:
        cell["hot_ids"] = hot_ids
    return cells


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(cell: dict, seconds: float, workdir: Path) -> dict:
    argv = [
        "wrk",
        f"-t{WRK_THREADS}",
        f"-c{WRK_CONNECTIONS}",
        f"-d{seconds}s",
        # The naive search takes seconds at a million books; time it rather than drop it.
        "--timeout",
        "10s",
        "--latency",
    ]
    if cell["endpoint"] == "detail":
        script = workdir / "ids.lua"
        ids = ",".join(map(str, cell["hot_ids"]))
        script.write_text(
            f"local ids = {{{ids}}}\n"
            "request = function()\n"
            f'  return wrk.format("GET", "{cell["path"]}" .. ids[math.random(#ids)] .. "/")\n'
            "end\n"
        )
        argv += ["-s", str(script)]
    out = subprocess.run([*argv, BASE + cell["path"]], capture_output=True, text=True).stdout
    latency = {
        pct: float(value) * UNITS[unit]
        for pct, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)", out, re.M)
    }
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": latency["50"],
        "p99": latency["99"],
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": sum(map(int, errors.groups())) if errors else 0,
    }


def settle() -> None:
    """Wait until every gunicorn worker is free again: a slow cell's queued requests must not
    be served during the next cell."""
    from concurrent.futures import ThreadPoolExecutor

    def timed(_):
        started = time.perf_counter()
        urllib.request.urlopen(f"{BASE}/bench/constant/", timeout=60).read()
        return time.perf_counter() - started

    with ThreadPoolExecutor(GUNICORN_WORKERS * 2) as pool:
        for _ in range(120):
            if max(pool.map(timed, range(GUNICORN_WORKERS * 2))) < 0.05:
                return
            time.sleep(0.25)


def measure_reads(size: int, profile: dict, rng: random.Random) -> list[dict]:
    from apps.write.catalog.models import Book

    ids = list(Book.objects.values_list("pk", flat=True))
    hot_ids = rng.sample(ids, min(HOT_SET, len(ids)))
    return run_cells(
        read_cells(size, hot_ids), size=size, rounds=profile["rounds"],
        seconds=profile["seconds"], rng=rng,
    )  # fmt: skip


def run_cells(
    cells: list[dict], *, size: int, rounds: int, seconds: float, rng: random.Random
) -> list[dict]:
    """wrk on each cell (its `path`, and `hot_ids` for details), after a warm-up, in `rounds`
    shuffled rounds; each cell gains its `runs` and `size`."""
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for cell in cells:  # warm-up, not recorded: connections, caches, query plans
            settle()
            wrk(cell, 1, workdir)
        for cell in cells:
            cell["runs"] = []
        for r in range(rounds):
            order = cells[:]
            rng.shuffle(order)
            for i, cell in enumerate(order, 1):
                print(
                    f"\r  {size:,} books, round {r + 1}/{rounds}, "
                    f"cell {i}/{len(order)}: {cell['endpoint']} ({cell['variant']})        ",
                    end="",
                    flush=True,
                )
                settle()
                cell["runs"].append(wrk(cell, seconds, workdir))
        print()
    for cell in cells:
        del cell["hot_ids"]
        cell["size"] = size
    return cells


# --- commands and lag ------------------------------------------------------------------------


def prepare_customers(count: int) -> Path:
    from rest_framework.authtoken.models import Token

    from apps.write.customers import services as customers

    tokens = []
    for n in range(count):
        customer = customers.customer_sign_up(
            username=f"bench{n}",
            email=f"bench{n}@example.com",
            password="bench-customer-passphrase",
            full_name=f"Bench Customer {n}",
            shipping_address="1 Bench Road",
        )
        tokens.append(Token.objects.create(user=customer.user).key)
    path = BENCH / ".setup.json"
    path.write_text(json.dumps({"tokens": tokens}))
    return path


def stocked_books(count: int, units: int) -> list[int]:
    from django.db.models import Exists, OuterRef

    from apps.write.catalog.models import Book
    from apps.write.inventory import services as inventory
    from apps.write.inventory.models import StockItem

    # An anti-join: at a million books the stocked ids overflow a statement's 65,535
    # parameters, and a NOT IN of them does not fit in work_mem to be hashed.
    stocked = StockItem.objects.filter(book_id=OuterRef("pk"), on_hand__gt=0)
    chosen = list(
        Book.objects.exclude(Exists(stocked)).order_by("?").values_list("pk", flat=True)[:count]
    )
    for book_id in chosen:
        inventory.stock_receive(actor=None, book_id=book_id, quantity=units, note="bench")
    return chosen


def driver(mode: str, setup: Path, books: list[int], **options) -> dict:
    argv = [sys.executable, "-m", "bench.driver", mode, "--base", BASE, "--setup", str(setup)]
    argv += ["--books", ",".join(map(str, books))]
    for name, value in options.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    done = subprocess.run(argv, cwd=ROOT, env=os.environ, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"driver failed:\n{done.stderr}")
    return json.loads(done.stdout)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def measure_commands(profile: dict, setup: Path) -> dict:
    from apps.write.inventory.models import StockItem

    cold = stocked_books(300, 100_000)
    runs = {"uncontended, 1 client": [], "uncontended, 8 clients": [], "hot spot, 8 clients": []}
    shortfall_checks = []
    for r in range(profile["rounds"]):
        say(f"commands, round {r + 1}/{profile['rounds']}")
        for name in runs:
            if name.startswith("hot"):
                hot = stocked_books(3, 20)
                result = driver("closed", setup, hot, concurrency=8, requests=profile["hot_orders"])
                statuses = [x["status"] for x in result["requests"]]
                units = 3 * 20
                left = sum(
                    StockItem.objects.filter(book_id__in=hot).values_list("on_hand", flat=True)
                )
                shortfall_checks.append(
                    {
                        "requested": len(statuses),
                        "stock": units,
                        "placed": statuses.count(201),
                        "refused_409": statuses.count(409),
                        "shortfall": len(statuses) - units,
                        "left_on_hand": left,
                        "other": len(statuses) - statuses.count(201) - statuses.count(409),
                    }
                )
            else:
                clients = 1 if "1 client" in name else 8
                result = driver(
                    "closed", setup, cold, concurrency=clients, requests=profile["orders"]
                )
            latencies = [x["latency"] * 1000 for x in result["requests"]]
            runs[name].append(
                {
                    "p50": percentile(latencies, 50),
                    "p99": percentile(latencies, 99),
                    "throughput": len(latencies) / result["elapsed"],
                    "errors": sum(1 for x in result["requests"] if x["status"] not in (201, 409)),
                }
            )
    return {"runs": runs, "hot_spot": shortfall_checks}


def measure_lag(profile: dict, setup: Path, *, series: bool = False) -> dict:
    """The lag from each order's commit to the order history's checkpoint passing it, at each
    of LAG_RATES; with `series`, each run also keeps every order's (seconds into the run, lag
    in ms), for a plot that shows when the slow ones came."""
    from apps.cqrs.models import DomainEvent

    books = stocked_books(300, 100_000)
    read_dsn = os.environ["DATABASE_URL"].replace("postgres://", "postgresql://")
    runs: dict[int, list[dict]] = {rate: [] for rate in LAG_RATES}
    for r in range(profile["rounds"]):
        for rate in LAG_RATES:
            say(f"lag, round {r + 1}/{profile['rounds']}, {rate} orders/s")
            wait_for_projectors("before the lag run")
            result = driver(
                "open",
                setup,
                books,
                rate=rate,
                seconds=profile["lag_seconds"],
                read_dsn=read_dsn,
            )
            placed = [x for x in result["requests"] if x["status"] == 201]
            committed = dict(
                DomainEvent.objects.filter(
                    position__in=[x["position"] for x in placed]
                ).values_list("position", "recorded_at")
            )
            samples = result["samples"]
            seen, s = [], 0  # (commit time, lag in ms) of each order
            for x in sorted(placed, key=lambda x: x["position"]):
                while s < len(samples) and samples[s][1] < x["position"]:
                    s += 1
                if s < len(samples):
                    at = committed[x["position"]].timestamp()
                    seen.append((at, (samples[s][0] - at) * 1000))
            lags = [ms for _, ms in seen]
            run = {
                "orders": len(placed),
                "failed": len(result["requests"]) - len(placed),
                "achieved_rate": len(result["requests"]) / result["elapsed"],
                "p50": percentile(lags, 50),
                "p99": percentile(lags, 99),
                "max": max(lags),
                "unseen": len(placed) - len(lags),
            }
            if series:
                start = min(at for at, _ in seen)
                run["series"] = [[round(at - start, 3), round(ms, 1)] for at, ms in seen]
            runs[rate].append(run)
    return runs


# --- replay ----------------------------------------------------------------------------------


# One replay process per core: projectors share no table (rebuild_read_models --jobs).
REPLAY_JOBS = os.cpu_count() or 1


def measure_replay() -> dict:
    from apps.cqrs.models import DomainEvent

    events = DomainEvent.objects.count()
    # A wrapper process whose only child is the rebuild, so that RUSAGE_CHILDREN is its own:
    # its peak memory, and its CPU with its replayer processes'.
    wrapper = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "code = subprocess.call(sys.argv[1:])\n"
        "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(time.perf_counter() - t, u.ru_maxrss, u.ru_utime + u.ru_stime)\n"
        "sys.exit(code)\n"
    )
    rebuild = ["manage.py", "rebuild_read_models", "--jobs", str(REPLAY_JOBS)]
    argv = [sys.executable, "-c", wrapper, sys.executable, *rebuild]
    done = subprocess.run(argv, cwd=ROOT, env=os.environ, stdout=subprocess.PIPE, text=True)
    if done.returncode:
        raise SystemExit("rebuild_read_models failed")
    *said, last = done.stdout.strip().splitlines()
    seconds, max_rss_kb, cpu = last.split()
    seconds = float(seconds)
    # The command's line for each read model: its partitions' replays, readying and switch.
    read_models = {
        m["name"]: {
            "replayed_s": [float(s) for s in m["replays"].split(" + ")],
            "readied_s": float(m["readied"]),
            "switched_s": float(m["switched"]),
        }
        for m in map(REBUILT.match, said)
        if m
    }
    return {
        "events": events,
        "seconds": seconds,
        "events_per_second": events / seconds,
        "peak_rss_mb": int(max_rss_kb) / 1024,
        "cpu_s": float(cpu),
        "jobs": REPLAY_JOBS,
        "read_models": read_models,
    }


REBUILT = re.compile(
    r"(?P<name>\S+) v\d+: .* \(replayed in (?P<replays>[\d. +]+) s, readied in "
    r"(?P<readied>[\d.]+) s, switched in (?P<switched>[\d.]+) s\)$"
)


# --- the run ---------------------------------------------------------------------------------


SPEED_ROWS = 200_000


def machine_speed() -> float:
    """CPU seconds of a fixed piece of plain Python work, none of it the shop's: making, encoding,
    decoding and sorting SPEED_ROWS small dicts. A machine's speed has drifted by a third
    within minutes, the machines these benchmarks ran on differed by nearly three times, and not
    alike for every kind of work (a loop of additions barely moved): a report carries the
    reading so that its figures are compared with another's only at a like speed."""
    started = time.process_time()
    rows = [{"id": i, "title": f"book {i}", "price": str(i / 4)} for i in range(SPEED_ROWS)]
    json.loads(json.dumps(rows))
    sorted(rows, key=lambda row: row["title"])
    return time.process_time() - started


def versions() -> dict:
    import celery
    import django
    import gunicorn
    import redis
    import rest_framework
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0]
    server = redis.Redis.from_url(ENV["REDIS_URL"]).info("server")["redis_version"]
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split()[1]
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "Python": platform.python_version(),
        "Django": django.get_version(),
        "DRF": rest_framework.VERSION,
        "Celery": celery.__version__,
        "gunicorn": gunicorn.__version__,
        "PostgreSQL": postgres,
        "Redis": server,
        "wrk": wrk_version,
        "CPU": f"{os.cpu_count()} × {cpu}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes; about 6 minutes")
    args = parser.parse_args()
    profile = dict(
        PROFILES["quick" if args.quick else "full"], name="quick" if args.quick else "full"
    )
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk); `make bench` installs it.")
    os.environ.update(ENV)
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    started = time.perf_counter()
    speed = [machine_speed()]
    rng = random.Random(2026)

    say(f"{profile['name']} run: fresh database {DB_NAME}")
    fresh_database()
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        # The naive design's best shot: the index its ordering needs (the write model has none).
        cursor.execute("CREATE INDEX bench_book_title_id ON catalog_book (title, id)")
    processes = start_stack()
    results = {"profile": profile, "reads": [], "seeding": [], "versions": versions()}
    results["gunicorn_workers"] = GUNICORN_WORKERS
    results["server"] = "sync workers (WSGI)"
    try:
        setup = prepare_customers(16)
        have = 0
        for size in profile["sizes"]:
            say(f"seeding to {size:,} books (bulk path: same rows and events as the services)")
            t = time.perf_counter()
            call_command("bulk_seed_catalog", books=size - have, seed=size)
            seeded = time.perf_counter() - t
            projected = wait_for_projectors("projecting")
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE")
            have = size
            results["seeding"].append({"size": size, "seed_s": seeded, "project_s": projected})
            say(f"reads at {size:,} books")
            results["reads"] += measure_reads(size, profile, rng)
            if size == profile["sizes"][1]:
                say("replay: rebuild_read_models over the whole log")
                results["replay"] = measure_replay()
                wait_for_projectors("after the rebuild")
        say("commands")
        results["commands"] = measure_commands(profile, setup)
        say("lag")
        results["lag"] = measure_lag(profile, setup)
    finally:
        stop_stack(processes)
    say("scale-out: appends and partitioned projection (bench/scaling.py, a database of its own)")
    out = BENCH / ".scaling.json"
    argv = [sys.executable, "-m", "bench.scaling", "--out", str(out)]
    subprocess.run([*argv, *(["--quick"] if args.quick else [])], cwd=ROOT, check=True)
    results["scaling"] = json.loads(out.read_text())
    results["speed_s"] = [*speed, machine_speed()]
    results["elapsed_s"] = time.perf_counter() - started
    results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    (BENCH / f"results-{profile['name']}.json").write_text(json.dumps(results, indent=1))
    from bench.report import write_report

    write_report(results)
    say(f"done in {results['elapsed_s'] / 60:.1f} min: see bench/")


if __name__ == "__main__":
    main()
