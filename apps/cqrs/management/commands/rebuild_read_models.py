import gc
import os
import selectors
import sys
import threading
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections
from tqdm import tqdm

from apps.cqrs import blue_green, runtime
from apps.cqrs.checks import CONTRACTS
from apps.cqrs.consistency import head_position
from apps.cqrs.projectors import Partition, Projector, registry


class Command(BaseCommand):
    # What a replay depends on: every event in the log can be decoded. The others (URLs,
    # templates) imported the web's modules, 0.2 s before the replay could start.
    requires_system_checks = [CONTRACTS]
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
            help="Replay this many partitions at once: one in this process, the others in "
            "processes of their own (a projector with N partitions gives N of them; one that "
            "replays by rows, the catalog listing, is split this many ways; others give one).",
        )

    def run_from_argv(self, argv: list[str]) -> None:
        _collect_less()  # a process of its own: not in call_command's caller
        super().run_from_argv(argv)

    def handle(
        self,
        *args: Any,
        projectors: Any = None,
        jobs: int = 1,
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
        if jobs > 1:
            if not all(blue_green.possible(p) for p in chosen):
                raise CommandError("--jobs needs PostgreSQL; SQLite rebuilds one at a time.")
            self.rebuild_in_processes(chosen, jobs, verbosity)
            return
        head = head_position()
        failed = []
        for projector in chosen:
            started = time.perf_counter()
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
                    f"{result.position}; it serves reads (built in "
                    f"{time.perf_counter() - started:.2f} s)"
                )
        if failed:
            raise CommandError(
                "; ".join(failed) + " (the live versions serve on; the admin's Projections "
                "page shows the error)"
            )

    def rebuild_in_processes(self, chosen: list[Projector], jobs: int, verbosity: int) -> None:
        """Prepare a build of every chosen read model, replay each partition of each into it,
        `jobs` at a time (`replay_partitions`; projectors share no table, and partitions share
        no row), then switch each to its build. A build is readied for its switch (indexes,
        planner statistics: `blue_green.make_ready`) in a thread as soon as its replay is done,
        while the others replay. Progress comes from the build checkpoints the replayers move.
        Each read model's line says how long its partitions' replays, its readying and its
        switch took: where a rebuild's time went."""
        parts = [part for projector in chosen for part in projector.replay_parts(jobs)]
        with ExitStack() as locks, ThreadPoolExecutor(1) as readying:
            # Forked first: before this process starts a thread of its own.
            processes: list[ForkedReplayer] = []
            for _ in range(min(jobs, len(parts)) - 1):
                processes.append(ForkedReplayer(self.replay_named))
                locks.callback(processes[-1].wait)
            for projector in chosen:
                locks.enter_context(blue_green.build_lock(projector))
                blue_green.prepare(projector)
            readied: dict[str, Future[float]] = {}
            switched: set[str] = set()

            def ready(projector: Projector) -> None:
                readied[projector.name] = readying.submit(self.ready_build, projector)

            try:
                failed, replayed = self.replay_partitions(
                    chosen, parts, processes, verbosity, ready
                )
                if failed:
                    raise CommandError(
                        f"Rebuild failed for: {', '.join(failed)} (see its error above); the "
                        "live versions serve on."
                    )
                for projector in chosen:
                    made_ready = readied[projector.name].result()  # or its error
                    started = time.perf_counter()
                    result = blue_green.switch(projector, ready=True)
                    switched.add(projector.name)
                    if verbosity:
                        replays = " + ".join(f"{s:.2f}" for s in replayed[projector.name])
                        self.stdout.write(
                            f"{projector.name} v{projector.version}: built to position "
                            f"{result.position}; it serves reads (replayed in {replays} s, "
                            f"readied in {made_ready:.2f} s, switched in "
                            f"{time.perf_counter() - started:.2f} s)"
                        )
            except BaseException as exc:
                wait(readied.values())  # a build is dropped once nothing works on it
                # Every build not switched, also one whose replay never wrote a checkpoint.
                for projector in chosen:
                    if projector.name not in switched:
                        blue_green.fail(projector, exc)
                raise

    def replay_partitions(
        self,
        chosen: list[Projector],
        parts: list[Partition],
        processes: list["ForkedReplayer"],
        verbosity: int,
        on_replayed: Callable[[Projector], None],
    ) -> tuple[list[str], dict[str, list[float]]]:
        """Replay `parts` (partitions or shards of the chosen projectors,
        `Projector.replay_parts`) in replayers, each handed the next waiting part when it has
        done one: a thread of this process, which takes the first (the listing's first shard,
        the longest), and the `processes`. `on_replayed(projector)` is called once all of a
        projector's parts have been replayed. Returns the names of those that failed, and the
        seconds each replayed part took, by projector."""
        head = head_position()
        waiting = list(parts)
        unreplayed = Counter(part.projector.name for part in waiting)
        total = len(waiting)
        replayers: list[Replayer] = [ReplayerThread(self.replay_named), *processes]
        running: dict[Replayer, Partition] = {}
        failed: list[str] = []
        replayed: defaultdict[str, list[float]] = defaultdict(list)
        done = 0

        def hand_on(replayer: Replayer) -> None:
            assert replayer.stdin is not None
            assert replayer.stdout is not None
            if waiting:
                running[replayer] = part = waiting.pop(0)
                replayer.stdin.write(f"{part.name}\n")
                replayer.stdin.flush()
            else:
                answers.unregister(replayer.stdout)
                replayer.stdin.close()  # it exits when its input ends

        with (
            selectors.DefaultSelector() as answers,
            tqdm(
                total=head * total,
                desc=f"{total} partitions of {len(chosen)} projectors, {len(replayers)} at a time",
                unit="pos",
                disable=verbosity == 0,
                file=self.stderr._out,
            ) as bar,
        ):
            for replayer in replayers:
                assert replayer.stdout is not None
                answers.register(replayer.stdout, selectors.EVENT_READ, replayer)
                hand_on(replayer)
            while running:
                for key, _ in answers.select(timeout=0.2):
                    replayer = key.data
                    part = running.pop(replayer)
                    answer = replayer.stdout.readline()
                    done += 1
                    outcome, _, seconds = answer.partition(" ")
                    if outcome == "ok":
                        replayed[part.projector.name].append(float(seconds))
                        unreplayed[part.projector.name] -= 1
                        if not unreplayed[part.projector.name]:
                            on_replayed(part.projector)
                    else:  # "failed", or nothing: it died
                        failed.append(part.name)
                    if answer:
                        hand_on(replayer)
                    else:
                        answers.unregister(key.fileobj)
                in_progress = [
                    blue_green.build_positions(part.projector).get(part.name, 0)
                    for part in running.values()
                ]
                bar.update(head * done + sum(min(p, head) for p in in_progress) - bar.n)
        for replayer in replayers:
            replayer.wait()
        return failed + [part.name for part in waiting], replayed

    @staticmethod
    def ready_build(projector: Projector) -> float:
        """`blue_green.make_ready` on a thread of its own; returns the seconds it took."""
        started = time.perf_counter()
        try:
            blue_green.make_ready(projector)
        finally:
            connections.close_all()  # this thread's
        return time.perf_counter() - started

    def replay_named(self, names: TextIO, answers: TextIO) -> None:
        """Replay the parts named in `names` (their checkpoints' names, one a line) into the
        builds the parent prepared, answering "ok" or "failed" for each in `answers`, and the
        seconds it took."""
        for line in names:
            name = line.rstrip("\n")
            projector = registry.get(name.partition("[")[0])
            part = Partition.named(projector, name)
            started = time.perf_counter()
            try:
                with blue_green.into_build(projector):
                    result = runtime.replay(projector, partition=part)
            except Exception:
                traceback.print_exc()
                ok = False
            else:
                ok = result.failed_position is None
                if not ok:
                    self.stderr.write(f"{name} stopped at {result.failed_position}")
            answers.write(f"{'ok' if ok else 'failed'} {time.perf_counter() - started:.3f}\n")
            answers.flush()


class ReplayerThread:
    """A replayer in this process, spoken to as a `ForkedReplayer` is (lines through pipes),
    so the parent hands on and hears back from both alike. Ends when its input does;
    its answers end with it, also when it fails, which the parent takes for a death."""

    def __init__(self, replay_named: Callable[[TextIO, TextIO], None]) -> None:
        names_read, names_written = os.pipe()
        answers_read, answers_written = os.pipe()
        self.stdin = open(names_written, "w")  # noqa: SIM115 (closed by the parent's hand_on)
        self.stdout = open(answers_read)  # noqa: SIM115 (closed with the command)
        self._names, self._answers = open(names_read), open(answers_written, "w")  # noqa: SIM115
        self._thread = threading.Thread(target=self._serve, args=(replay_named,), daemon=True)
        self._thread.start()

    def _serve(self, replay_named: Callable[[TextIO, TextIO], None]) -> None:
        try:
            with self._names, self._answers:
                replay_named(self._names, self._answers)
        finally:
            connections.close_all()  # this thread's

    def wait(self) -> None:
        self._thread.join()
        self.stdin.close()  # already, unless the thread failed
        self.stdout.close()


class ForkedReplayer:
    """A replayer in a process of its own, forked from this one: it starts at once, with
    Django set up, where a new interpreter took 0.6 s of CPU to get there while the replay had
    begun. The child makes connections of its own and leaves those it inherits alone: using or
    closing one would end the parent's session on the server (psycopg frees a connection made
    in another process without a word to the server). It leaves with `os._exit` when its input
    ends: nothing of the parent's runs twice at exit."""

    def __init__(self, replay_named: Callable[[TextIO, TextIO], None]) -> None:
        names_read, names_written = os.pipe()
        answers_read, answers_written = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        self.pid = os.fork()
        if self.pid == 0:
            for inherited in connections.all(initialized_only=True):
                del connections[inherited.alias]  # a new one is made on first use
            os.close(names_written)
            os.close(answers_read)
            status = 0
            try:
                with open(names_read) as names, open(answers_written, "w") as answers:
                    replay_named(names, answers)
            except BaseException:
                traceback.print_exc()
                status = 1
            finally:
                connections.close_all()  # its own
                os._exit(status)
        os.close(names_read)
        os.close(answers_written)
        self.stdin = open(names_written, "w")  # noqa: SIM115 (closed by the parent's hand_on)
        self.stdout = open(answers_read)  # noqa: SIM115 (closed by wait)

    def wait(self) -> None:
        self.stdin.close()  # it exits when its input ends, if it has not
        if self.pid:
            os.waitpid(self.pid, 0)
            self.pid = 0
        self.stdout.close()


Replayer = ForkedReplayer | ReplayerThread


def _collect_less() -> None:
    """A replay makes millions of short-lived objects, and Python's cyclic collector ran a
    pass every 700 of them, now and then a full one over every object alive, Django's and the
    imported modules' among them: a fifth of a replay's CPU (the listing's 6.6 s became
    5.3 s). What start-up loaded is frozen out of the collector's sight, and a pass comes
    once 100,000 more objects are alive than before it: a replay holds one batch (2,000
    events) at a time, freed by reference counting when the next is read (a test checks that
    no event outlives its batch), so none comes, where a pass per 10,000 took 0.9 s of a
    rebuild's CPU. Cycles would still be collected. Live workers showed no difference
    (bench-cost), so only replays do this."""
    gc.collect()
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(100_000, second, third)


def _advance(bar: tqdm) -> Callable[[int, int], None]:
    """A progress callback: `n` events applied, up to some position."""

    def advance(n: int, _position: int) -> None:
        bar.update(n)

    return advance
