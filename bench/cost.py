"""What an order costs (`make bench-cost`): CPU per order in the web server, the worker and
PostgreSQL, the projection lag at 100 orders/s, and the replay of the whole log.

The benchmark's own database and Redis database, a catalog of 60,000 books (the bulk seeder),
gunicorn with 2 sync workers and one Celery worker (prefork, 2 processes, with beat, the sweep
every 5 s as in production). CPU time is read from /proc for each process tree (utime + stime
of the root and every descendant) before and after `ORDERS` orders placed one after another
through the API, once the worker has applied all their events, and divided by the orders; the
same reading over an idle stretch of the same length says what the background (beat, polls)
costs. Three rounds; medians. The replay runs three times and its median run is reported,
with its CPU read for the command's processes, for PostgreSQL's and for the whole machine; a
fixed piece of plain Python work, before and after, reads the machine's speed
(`run.machine_speed`). Writes bench/results-cost.json, bench/COST.md and bench/cost.png.
BENCH_POOL=threads runs the worker with Celery's thread pool instead, for comparison.
"""

import json
import os
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.run import BENCH, BIN, SPEED_ROWS, machine_speed, percentile, say

DB_NAME = "bookstore_cost"
BOOKS = 60_000
ORDERS = 300
ROUNDS = 3
LAG_RATE, LAG_SECONDS = 100, 10
WEB_WORKERS = 2
REPLAYS = 3  # the replay's run-to-run spread on a shared 2-core machine is a second or more
TICK = os.sysconf("SC_CLK_TCK")
# issue 15's budget, ms of CPU per order
BUDGET = {"web": 6.0, "worker": 5.0}
REPLAY_TARGET = 20_000  # events/s


def _cpu(pid: int) -> float:
    """CPU seconds of a process and its descendants: its own, its live children's, and those of
    the children it has reaped (a PostgreSQL backend whose connection closed)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:  # gone
        return 0.0
    # utime, stime, cutime, cstime
    own = sum(int(field) for field in fields[11:15]) / TICK
    return own + sum(_cpu(int(child)) for child in children)


def _named(name: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def snapshot(web: int, worker: int) -> dict[str, float]:
    return {
        "web": _cpu(web),
        "worker": _cpu(worker),
        "postgres": _postgres_cpu(),
        "redis": sum(_cpu(pid) for pid in _named("redis-server")),
    }


def _postgres_cpu() -> float:
    return sum(_cpu(pid) for pid in _named("postgres") if _is_root_postgres(pid))


def _machine_cpu() -> float:
    """Busy CPU seconds of the whole machine: user, nice, system, irq and softirq time from
    /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    return sum(int(fields[i]) for i in (0, 1, 2, 5, 6)) / TICK


def _is_root_postgres(pid: int) -> bool:
    """The postmaster (whose tree holds every backend), not its children twice over."""
    try:
        parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        return (Path(f"/proc/{parent}/comm").read_text().strip()) != "postgres"
    except OSError:
        return False


def start(bench, *, gunicorn_args: tuple[str, ...] = ()) -> tuple[object, object]:
    worker = bench.start(
        "worker",
        [str(BIN / "celery"), "-A", "config", "worker", "--beat", "-Q",
         "projections,side-effects,rebuilds", "--concurrency", "2", "--loglevel", "WARNING",
         "--pool", os.environ.get("BENCH_POOL", "prefork"),
         "--schedule", str(Path(tempfile.gettempdir()) / "bench-cost-beat")],
    )  # fmt: skip
    web = bench.start(
        "gunicorn",
        [str(BIN / "gunicorn"), "config.wsgi:application", "--bind", f"127.0.0.1:{bench.PORT}",
         "--workers", str(WEB_WORKERS), *gunicorn_args],
    )  # fmt: skip
    import urllib.request

    for _ in range(100):
        try:
            urllib.request.urlopen(f"{bench.BASE}/healthz", timeout=1)
            return web, worker
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not start; see bench/.gunicorn.log")


def _reaped_cpu() -> float:
    """CPU seconds of this process's children that have ended: the driver, once it has."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure_cpu(bench, setup: Path, books: list[int], web: int, worker: int) -> dict:
    bench.driver("closed", setup, books, concurrency=1, requests=30)  # warm-up
    bench.wait_for_projectors("after the warm-up")
    time.sleep(1)
    before = snapshot(web, worker)
    started = time.perf_counter()
    driver_before = _reaped_cpu()
    result = bench.driver("closed", setup, books, concurrency=1, requests=ORDERS)
    driver = _reaped_cpu() - driver_before
    bench.wait_for_projectors("applying the orders")
    elapsed = time.perf_counter() - started
    after = snapshot(web, worker)
    time.sleep(0.5)
    idle_before = snapshot(web, worker)
    time.sleep(elapsed)
    idle_after = snapshot(web, worker)
    placed = sum(1 for x in result["requests"] if x["status"] == 201)
    latencies = [x["latency"] * 1000 for x in result["requests"]]
    return {
        "orders": placed,
        "seconds": elapsed,
        "ms_per_order": {k: (after[k] - before[k]) * 1000 / placed for k in before},
        "idle_ms_per_order": {
            k: (idle_after[k] - idle_before[k]) * 1000 / placed for k in idle_before
        },
        # The load generator shares the cores it measures.
        "driver_ms_per_order": driver * 1000 / placed,
        "place_p50_ms": percentile(latencies, 50),
        "place_p99_ms": percentile(latencies, 99),
    }


def main() -> None:
    from bench import run as bench

    bench.ENV["CQRS_SWEEP_SECONDS"] = "5"  # production's default, not the benchmarks' 1 s
    bench.use_database(DB_NAME, redis_db=8)
    from django.core.management import call_command

    started = time.perf_counter()
    results: dict = {
        "rounds": [],
        "orders": ORDERS,
        "cores": os.cpu_count(),
        "speed_s": [machine_speed()],
    }
    say(f"seeding {BOOKS:,} books")
    call_command("bulk_seed_catalog", books=BOOKS, seed=BOOKS, verbosity=0)
    setup = bench.prepare_customers(8)
    books = bench.stocked_books(300, 100_000)
    web, worker = start(bench)
    try:
        bench.wait_for_projectors("projecting the catalog")
        # As bench/run.py does: without statistics (autovacuum is off on the benchmark machine),
        # the horizon's scan of the log was a sequential scan, 15-33 ms a batch.
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        for r in range(ROUNDS):
            say(f"CPU per order, round {r + 1}/{ROUNDS}: {ORDERS} orders, one client")
            # The machine's speed moves within minutes: each round carries its own reading.
            speed = machine_speed()
            cpu = measure_cpu(bench, setup, books, web.pid, worker.pid)
            results["rounds"].append({**cpu, "speed_s": speed})
        say(f"lag at {LAG_RATE} orders/s for {LAG_SECONDS} s")
        bench.LAG_RATES = [LAG_RATE]
        lag = bench.measure_lag({"rounds": 1, "lag_seconds": LAG_SECONDS}, setup, series=True)
        results["lag"] = lag[LAG_RATE][0]
        bench.wait_for_projectors("after the lag run")
    finally:
        bench.stop_stack([web, worker])
    results["replays"] = []
    for r in range(REPLAYS):
        say(f"replay {r + 1}/{REPLAYS}: rebuild_read_models over the whole log")
        speed = machine_speed()
        postgres, machine = _postgres_cpu(), _machine_cpu()
        replay = bench.measure_replay()
        replay["speed_s"] = speed
        replay["postgres_cpu_s"] = _postgres_cpu() - postgres
        replay["machine_cpu_s"] = _machine_cpu() - machine
        results["replays"].append(replay)
    results["replay"] = sorted(results["replays"], key=lambda r: r["seconds"])[REPLAYS // 2]
    results["replay_alone"] = replay_each_alone()
    results["speed_s"].append(machine_speed())
    results["elapsed_s"] = time.perf_counter() - started
    results["commit"] = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=BENCH.parent
    ).stdout.strip()
    (BENCH / "results-cost.json").write_text(json.dumps(results, indent=1))
    write_report(results)
    say(f"done in {results['elapsed_s'] / 60:.1f} min: see bench/COST.md")


def replay_each_alone() -> dict[str, float]:
    """Wall seconds of `rebuild_read_models --projector NAME` for each read model on its own,
    start-up included: which one bounds the parallel replay."""
    from apps.cqrs.projectors import registry

    seconds = {}
    for projector in registry.replayable():
        say(f"replay: {projector.name} alone")
        argv = [str(BIN / "python"), "manage.py", "rebuild_read_models", "-v", "0"]
        started = time.perf_counter()
        subprocess.run([*argv, "--projector", projector.name], cwd=BENCH.parent, check=True)
        seconds[projector.name] = time.perf_counter() - started
    return seconds


def _replay_row(name: str, replay: dict, alone: float) -> str:
    phases = replay["read_models"][name]
    replays = " + ".join(f"{s:.1f}" for s in phases["replayed_s"])
    readied, switched = phases["readied_s"], phases["switched_s"]
    return f"| {name} | {replays} | {readied:.1f} | {switched:.1f} | {alone:.1f} |"


def plot(results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds, lag = results["rounds"], results["lag"]
    parts = ["web", "worker", "postgres", "redis"]
    each = [[r["ms_per_order"][part] for r in rounds] for part in parts]
    medians = [statistics.median(values) for values in each]
    spread = [
        [m - min(v) for m, v in zip(medians, each, strict=True)],
        [max(v) - m for m, v in zip(medians, each, strict=True)],
    ]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.bar(parts, medians, yerr=spread, capsize=4, color="#4c72b0")
    for i, part in enumerate(parts):
        if part in BUDGET:
            left.hlines(
                BUDGET[part], i - 0.4, i + 0.4, colors="#c44e52", linestyles="--", linewidth=2
            )
    left.set_ylabel("CPU ms per order (median of rounds, range)")
    left.set_title(f"CPU per order, {results['orders']} orders, one client (dashed: target)")
    # Each order's lag by when it committed: a stall shows as a ridge, where and how long.
    at, ms = zip(*lag["series"], strict=True)
    right.scatter(at, ms, s=4, color="#55a868")
    right.axhline(250, color="#c44e52", linestyle="--", label="p99 target (250 ms)")
    right.set_xlabel("s into the run, by commit")
    right.set_ylabel("ms from commit to the history's checkpoint")
    right.set_title(
        f"Lag at {LAG_RATE} orders/s ({lag['achieved_rate']:.0f} served/s)\n"
        f"p50 {lag['p50']:.0f} ms, p99 {lag['p99']:.0f} ms, max {lag['max']:.0f} ms"
    )
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(BENCH / "cost.png", dpi=110)


def write_report(results: dict) -> None:
    plot(results)
    rounds = results["rounds"]

    def median(key: str, part: str | None = None) -> float:
        return statistics.median(r[key] if part is None else r[key][part] for r in rounds)

    rows = []
    for part in ("web", "worker", "postgres", "redis"):
        each = " / ".join(f"{r['ms_per_order'][part]:.1f}" for r in rounds)
        target = f"≤ {BUDGET[part]:.0f}" if part in BUDGET else "reported"
        met = ""
        if part in BUDGET:
            met = "met" if median("ms_per_order", part) <= BUDGET[part] else "**missed**"
        rows.append(
            f"| {part} | {median('ms_per_order', part):.1f} | {each} | "
            f"{median('idle_ms_per_order', part):.1f} | {target} | {met} |"
        )
    lag, replay = results["lag"], results["replay"]
    # Orders answered a second, over the time from the first sent to the last answered: a
    # server that falls behind takes longer than the run's seconds to answer them all.
    served = lag["achieved_rate"]
    lag_met = lag["p99"] <= 250 and served >= 95
    cores, speed = results["cores"], results["speed_s"]
    budget_s = replay["events"] / REPLAY_TARGET
    replays = results["replays"]
    replays_s = " / ".join(f"{r['seconds']:.1f}" for r in replays)

    def speeds(runs: list[dict]) -> str:
        # Runs of results written before the readings were taken have none.
        return " / ".join(f"{r['speed_s']:.2f}" if "speed_s" in r else "?" for r in runs)

    (BENCH / "COST.md").write_text(
        f"""# What an order costs

`make bench-cost` (bench/cost.py) at commit {results["commit"]}, in
{results["elapsed_s"] / 60:.1f} minutes: {BOOKS:,} books, gunicorn with {WEB_WORKERS} sync
workers, one Celery worker (2 processes, with beat), PostgreSQL and Redis, all on one
{cores}-core machine.

The machine's speed: a fixed piece of plain Python work ({SPEED_ROWS:,} dicts made, encoded,
decoded and sorted: `machine_speed`) took {speed[0]:.2f} s of CPU before the run and
{speed[1]:.2f} s after it. Compare these figures with another run's only at a like speed.

## CPU per order

![CPU per order and lag](cost.png)

{results["orders"]} orders placed one after another through the API, {len(rounds)} rounds;
CPU of each process tree from /proc, from before the first order until the worker had applied
the last one's events. "Idle" is the same reading over an idle stretch as long, per order: what
the background (beat's sweep, polls) costs meanwhile, included in the first column.

| process tree | ms per order (median) | rounds | idle, same time | target | |
|---|---:|---|---:|---|---|
{chr(10).join(rows)}

`machine_speed` just before each round: {speeds(rounds)} s.

Place order, one client: p50 {median("place_p50_ms"):.1f} ms,
p99 {median("place_p99_ms"):.1f} ms. The client, bench/driver.py,
runs on the same two cores: {median("driver_ms_per_order"):.1f} ms of CPU an order, start-up
included.

## Lag at {LAG_RATE} orders/s

{lag["orders"]} orders sent over {LAG_SECONDS} s ({served:.1f} answered a second; the target
counts only with 95 or more): p50 {lag["p50"]:.0f} ms, p99 {lag["p99"]:.0f} ms,
max {lag["max"]:.0f} ms from an order's commit to the order history's checkpoint passing
it (every partition of it, as read-your-writes waits for); {lag["failed"]} failed.
Target p99 ≤ 250 ms: {"met" if lag_met else "**missed**"}. The plot's right half has each
order's lag by when it committed: a stall stands out as a ridge.

## Replay

`rebuild_read_models --jobs {replay["jobs"]}` over the whole log, {len(replays)} times:
{replays_s} s (`machine_speed` before each: {speeds(replays)} s). The median run:
{replay["events"]:,} events in
{replay["seconds"]:.1f} s, **{replay["events_per_second"]:,.0f} events/s**
(target {REPLAY_TARGET:,}), peak memory {replay["peak_rss_mb"]:.0f} MB.

Its CPU: {replay["cpu_s"]:.1f} s in the command's processes, {replay["postgres_cpu_s"]:.1f} s in
PostgreSQL's. The machine was busy {replay["machine_cpu_s"]:.1f} s of the
{cores * replay["seconds"]:.1f} s its {cores} cores had
({replay["machine_cpu_s"] / (cores * replay["seconds"]):.0%}). At {REPLAY_TARGET:,} events/s this
log would take {budget_s:.1f} s: at most {cores * budget_s:.1f} s of CPU on {cores} cores.

Where the median run's time went, by read model, as the command reports it: its partitions' replays
(the catalog listing's are shards, split by book), side by side with the others' in the
command's thread and its replayer process; its readying for the switch (indexes, planner
statistics), which starts as soon as its replay is done; and the switch itself. Then each read
model rebuilt on its own (`--projector NAME`, one process, no shards, start-up included).

| read model | replayed, s | readied, s | switched, s | rebuilt alone, s |
|---|---:|---:|---:|---:|
{chr(10).join(_replay_row(name, replay, s) for name, s in results.get("replay_alone", {}).items())}
"""
    )


if __name__ == "__main__":
    main()
