"""Scale-out figures for the write path and the projections (part of `make bench` and
`make bench-quick`; run alone with `python -m bench.scaling [--quick]`).

- Append scaling: a minimal command (`@command` + one `record()`, nothing else) from 1, 4, 16
  and 32 writer processes, events/s. Beside it, in the same run and on the same table shape:
  PostgreSQL's own INSERT + COMMIT with pgbench, and the SQL one real command sends, captured
  with Django's query log and replayed with pgbench (and once more with the old global append
  lock in front, for comparison).
- Projection scaling: events/s projected into the order history by one process on one
  partition against two processes on two partitions, on the same log.

It uses a database of its own (bookstore_scaling), so the other benchmarks' log stays as it is.
"""

import argparse
import dataclasses
import json
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_NAME = "bookstore_scaling"
DSN = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"
WRITERS = [1, 4, 16, 32]
OLD_APPEND_LOCK = "SELECT pg_advisory_xact_lock(13262840508428);"  # as apps/cqrs/log.py had it
PROFILES = {"quick": {"seconds": 2, "orders": 15_000}, "full": {"seconds": 6, "orders": 40_000}}
ROUNDS = 3


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def setup_django() -> None:
    os.environ.update(
        {
            "DATABASE_URL": DSN.replace("postgresql://", "postgres://"),
            "REDIS_URL": "redis://127.0.0.1:6379/6",
            "DJANGO_SECRET_KEY": "bench-only-secret-key-not-for-production-use-0123456789",
            "DJANGO_DEBUG": "0",
            "DJANGO_HTTPS": "0",
            "LOG_LEVEL": "WARNING",
        }
    )
    os.environ.pop("READ_DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def fresh_database() -> None:
    import psycopg

    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [DB_NAME]
        )
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME}")
        conn.execute(f"CREATE DATABASE {DB_NAME}")


# --- the minimal command ---------------------------------------------------------------------


def _minimal_command():
    from apps.cqrs.commands import command
    from apps.cqrs.events import Event
    from apps.cqrs.log import record

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class BenchTicked(Event):
        aggregate_type = "bench"
        aggregate_id_field = "tick_id"
        tick_id: str

    @command("bench.tick")
    def tick(*, actor=None, tick_id: str) -> None:
        record(BenchTicked(tick_id=tick_id))

    return tick


def _writer(start, until_box, counts) -> None:
    from django.db import connections

    connections.close_all()  # the parent's sockets are not ours
    tick = _minimal_command()
    start.wait()
    until = until_box.value
    done = 0
    while time.monotonic() < until:
        tick(tick_id=uuid.uuid4().hex)
        done += 1
    counts.put(done)
    connections.close_all()


def commands_per_second(writers: int, seconds: float) -> float:
    from django.db import connections

    connections.close_all()
    ctx = multiprocessing.get_context("fork")
    start, until, counts = ctx.Event(), ctx.Value("d", 0.0), ctx.Queue()
    processes = [ctx.Process(target=_writer, args=(start, until, counts)) for _ in range(writers)]
    for process in processes:
        process.start()
    time.sleep(0.5 + 0.05 * writers)  # every writer connected and waiting
    until.value = time.monotonic() + seconds
    start.set()
    total = sum(counts.get(timeout=seconds + 60) for _ in processes)
    for process in processes:
        process.join()
    return total / seconds


def captured_append_sql() -> list[str]:
    """The statements one minimal command sends, as Django logged them."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    tick = _minimal_command()
    marker = "capturedaggregate0001"
    with CaptureQueriesContext(connection) as captured:
        tick(tick_id=marker)
    statements = []
    for query in captured.captured_queries:
        sql = query["sql"].replace(f"'{marker}'", "'t' || :aid")
        sql = re.sub(r"'[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}'::uuid",
                     "gen_random_uuid()", sql)  # fmt: skip
        statements.append(sql.rstrip(";") + ";")
    return statements


def pgbench(script: str, clients: int, seconds: float) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(script)
    argv = ["pgbench", "-n", "-f", f.name, "-c", str(clients), "-j", str(min(clients, 2))]
    argv += ["-T", str(int(seconds)), "-h", "127.0.0.1", "-U", "postgres", DB_NAME]
    done = subprocess.run(argv, capture_output=True, text=True)
    os.unlink(f.name)
    if done.returncode:
        raise SystemExit(f"pgbench failed:\n{done.stderr[-2000:]}")
    out = done.stdout
    return float(re.search(r"tps = ([\d.]+)", out).group(1))


def measure_appends(seconds: float) -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_plain_event (LIKE cqrs_domainevent INCLUDING ALL)")
    variable = "\\set aid random(1, 9000000000000000000)\n"  # a new aggregate each time
    plain = (
        f"{variable}"
        "INSERT INTO bench_plain_event (event_id, aggregate_type, aggregate_id, "
        "aggregate_version, event_type, schema_version, payload, command, actor, "
        "correlation_id, recorded_at) VALUES (gen_random_uuid(), 'bench', 't' || :aid, 1, "
        "'BenchTicked', 1, '{}', 'bench.tick', 'system', gen_random_uuid(), now());\n"
    )
    statements = captured_append_sql()
    body = "\n".join(s for s in statements if not s.upper().startswith(("BEGIN", "COMMIT")))
    append = f"{variable}BEGIN;\n{body}\nCOMMIT;\n"
    locked = f"{variable}BEGIN;\n{OLD_APPEND_LOCK}\n{body}\nCOMMIT;\n"
    rows = []
    for writers in WRITERS:
        say(f"  appends: {writers} writer(s), {ROUNDS} interleaved rounds")
        runs: dict[str, list[float]] = {}
        for _ in range(ROUNDS):
            # The disk's fsync times wander: each round measures every variant once, back to back.
            measured = {
                "command_events_s": commands_per_second(writers, seconds),
                "plain_insert_commit_tps": pgbench(plain, writers, seconds),
                "append_sql_tps": pgbench(append, writers, seconds),
                "append_sql_with_old_lock_tps": pgbench(locked, writers, seconds),
            }
            for key, value in measured.items():
                runs.setdefault(key, []).append(value)
        rows.append(
            {"writers": writers, **{k: statistics.median(v) for k, v in runs.items()}, "runs": runs}
        )
    return {"rows": rows, "captured_sql": statements, "seconds": seconds, "rounds": ROUNDS}


# --- projection ------------------------------------------------------------------------------


def _project(partition: int, partitions: int, start) -> None:
    from django.db import connections

    from apps.cqrs import runtime
    from apps.cqrs.projectors import registry

    connections.close_all()
    history = registry.get("orders.history")
    type(history).partitions = partitions  # this run's layout (the class says 2)
    start.wait()
    runtime.catch_up(history, partition=partition)
    connections.close_all()


def projection_rate(partitions: int, events: int) -> dict:
    from django.db import connections

    from apps.cqrs import runtime
    from apps.cqrs.models import ProjectorCheckpoint
    from apps.cqrs.projectors import registry
    from apps.read.orders.models import OrderSummary

    history = registry.get("orders.history")
    type(history).partitions = partitions
    ProjectorCheckpoint.objects.filter(name__startswith=history.name).delete()
    runtime.start_rebuild(history)  # empty tables, checkpoints at zero for this layout
    connections.close_all()
    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    processes = [
        ctx.Process(target=_project, args=(i, partitions, start)) for i in range(partitions)
    ]
    for process in processes:
        process.start()
    time.sleep(1.0)
    began = time.perf_counter()
    start.set()
    for process in processes:
        process.join()
    seconds = time.perf_counter() - began
    assert OrderSummary.objects.count() > 0
    return {"partitions": partitions, "seconds": seconds, "events_s": events / seconds}


def measure_projection(orders: int, rounds: int = 3) -> dict:
    from apps.write.demo.order_events import copy_order_events

    events = copy_order_events(orders=orders)
    say(f"  projection: {events:,} order events")
    runs: dict[int, list[dict]] = {1: [], 2: []}
    for _ in range(rounds):
        for partitions in (1, 2):
            runs[partitions].append(projection_rate(partitions, events))
    return {"events": events, "runs": {str(k): v for k, v in runs.items()}}


def measure(profile: dict) -> dict:
    """Both parts in the scaling database; restores nothing else."""
    fresh_database()
    setup_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    say("scaling: append throughput against writers")
    appends = measure_appends(profile["seconds"])
    say("scaling: order history projection, 1 partition against 2")
    projection = measure_projection(profile["orders"])
    elapsed = time.perf_counter() - started
    return {"appends": appends, "projection": projection, "elapsed_s": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, help="write the figures here as JSON")
    args = parser.parse_args()
    results = measure(PROFILES["quick" if args.quick else "full"])
    text = json.dumps(results, indent=1)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
