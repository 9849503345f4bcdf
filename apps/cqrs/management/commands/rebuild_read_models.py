import argparse
import gc
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from apps.cqrs import blue_green, runtime
from apps.cqrs.consistency import head_position
from apps.cqrs.projectors import Partition, Projector, registry


class Command(BaseCommand):
    help = (
        "Build read models anew from the whole event log, beside the live ones, and switch "
        "reads to them once they have caught up (in place on SQLite)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--projector",
            action="append",
            dest="projectors",
            metavar="NAME",
            help="Rebuild only this projector (repeatable). Default: all of them.",
        )
        parser.add_argument(
            "--jobs",
            type=int,
            default=1,
            help="Replay this many partitions at once, each in a process of its own (a "
            "projector with N partitions gives N of them; others give one).",
        )
        # Internal: a child of --jobs replays one partition into the build its parent prepared.
        parser.add_argument("--partition", type=int, help=argparse.SUPPRESS)

    def run_from_argv(self, argv: list[str]) -> None:
        _collect_less()  # a process of its own: not in call_command's caller
        super().run_from_argv(argv)

    def handle(
        self,
        *args: Any,
        projectors: Any = None,
        jobs: int = 1,
        partition: Any = None,
        verbosity: int = 1,
        **options: Any,
    ) -> None:
        try:
            chosen = [registry.get(n) for n in projectors] if projectors else registry.replayable()
        except LookupError as exc:
            raise CommandError(str(exc)) from exc
        refused = [p.name for p in chosen if not p.replayable]
        if refused:
            raise CommandError(f"Side effects are never replayed: {', '.join(refused)}.")
        if jobs < 1:
            raise CommandError("--jobs must be 1 or more.")
        if partition is not None:
            with blue_green.into_build(chosen[0]):
                result = runtime.replay(chosen[0], partition=partition)
            if result.failed_position is not None:
                raise CommandError(f"stopped at position {result.failed_position}")
            return
        if jobs > 1:
            if not all(blue_green.possible(p) for p in chosen):
                raise CommandError("--jobs needs PostgreSQL; SQLite rebuilds one at a time.")
            self.rebuild_in_processes(chosen, jobs, verbosity)
            return
        head = head_position()
        failed = []
        for projector in chosen:
            with tqdm(
                total=head * projector.partitions,
                desc=f"{projector.name} v{projector.version}",
                unit="pos",
                disable=verbosity == 0,
                file=self.stderr._out,
            ) as bar:
                try:
                    result = blue_green.build(projector, on_batch=_advance(bar))
                except (blue_green.BuildRunning, blue_green.BuildFailed) as exc:
                    failed.append(f"{projector.name}: {exc}")
                    continue
                bar.update(max(bar.total - bar.n, 0))
            if verbosity:
                self.stdout.write(
                    f"{projector.name} v{projector.version}: built to position "
                    f"{result.position}; it serves reads"
                )
        if failed:
            raise CommandError(
                "; ".join(failed) + " (the live versions serve on; the admin's Projections "
                "page shows the error)"
            )

    def rebuild_in_processes(self, chosen: list[Projector], jobs: int, verbosity: int) -> None:
        """Prepare a build of every chosen read model, replay each partition of each into it in
        a `rebuild_read_models --projector NAME --partition K` process, `jobs` at a time
        (projectors share no table, and partitions share no row), then switch each to its build.
        A process of its own, not a fork: a forked child would inherit this one's database and
        broker connections. Progress comes from the build checkpoints the children move."""
        with ExitStack() as locks:
            for projector in chosen:
                locks.enter_context(blue_green.build_lock(projector))
                blue_green.prepare(projector)
            try:
                failed = self.replay_partitions(chosen, jobs, verbosity)
                if failed:
                    raise CommandError(
                        f"Rebuild failed for: {', '.join(failed)} (see its error above); the "
                        "live versions serve on."
                    )
                for projector in chosen:
                    result = blue_green.switch(projector)
                    if verbosity:
                        self.stdout.write(
                            f"{projector.name} v{projector.version}: built to position "
                            f"{result.position}; it serves reads"
                        )
            except BaseException as exc:
                for projector in chosen:
                    if blue_green.build_positions(projector):  # not switched yet
                        blue_green.fail(projector, exc)
                raise

    def replay_partitions(self, chosen: list[Projector], jobs: int, verbosity: int) -> list[str]:
        head = head_position()
        waiting = [part for projector in chosen for part in projector.partition_list()]
        running: dict[Partition, subprocess.Popen[bytes]] = {}
        failed = []
        total = len(waiting)
        with tqdm(
            total=head * total,
            desc=f"{total} partitions of {len(chosen)} projectors, {jobs} at a time",
            unit="pos",
            disable=verbosity == 0,
            file=self.stderr._out,
        ) as bar:
            while waiting or running:
                while waiting and len(running) < jobs:
                    part = waiting.pop(0)
                    manage = str(settings.BASE_DIR / "manage.py")
                    argv = [manage, "rebuild_read_models", "--projector", part.projector.name]
                    argv += ["--partition", str(part.index), "-v", "0"]
                    running[part] = subprocess.Popen([sys.executable, *argv])
                for part, process in list(running.items()):
                    if process.poll() is None:
                        continue
                    del running[part]
                    if process.returncode:
                        failed.append(part.name)
                done = total - len(waiting) - len(running)
                in_progress = [
                    blue_green.build_positions(part.projector).get(part.name, 0) for part in running
                ]
                bar.update(head * done + sum(min(p, head) for p in in_progress) - bar.n)
                time.sleep(0.2)
        return failed


def _collect_less() -> None:
    """A replay makes millions of short-lived objects, and Python's cyclic collector ran a
    pass every 700 of them, now and then a full one over every object alive, Django's and the
    imported modules' among them: a fifth of a replay's CPU (the listing's 6.6 s became
    5.3 s). What start-up loaded is frozen out of the collector's sight, and passes are
    rarer; cycles are still collected. Live workers showed no difference (bench-cost), so
    only replays do this."""
    gc.collect()
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(10_000, second, third)


def _advance(bar: tqdm) -> Callable[[int, int], None]:
    """A progress callback: `n` events applied, up to some position."""

    def advance(n: int, _position: int) -> None:
        bar.update(n)

    return advance
