import argparse
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from apps.cqrs import runtime
from apps.cqrs.models import ProjectorCheckpoint
from apps.cqrs.projectors import Partition, Projector, registry


class Command(BaseCommand):
    help = "Empty read models and replay the whole event log into them."

    def add_arguments(self, parser):
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
        # Internal: a child of --jobs replays one partition its parent has reset.
        parser.add_argument("--partition", type=int, help=argparse.SUPPRESS)

    def handle(self, *args, projectors=None, jobs=1, partition=None, verbosity=1, **options):
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
            result = runtime.replay(chosen[0], partition=partition)
            if result.failed_position is not None:
                raise CommandError(f"stopped at position {result.failed_position}")
            return
        if jobs > 1:
            self.rebuild_in_processes(chosen, jobs, verbosity)
            return
        head = runtime.head_position()
        failed = []
        for projector in chosen:
            with tqdm(
                total=head * projector.partitions,
                desc=projector.name,
                unit="pos",
                disable=verbosity == 0,
                file=self.stderr._out,
            ) as bar:
                result = runtime.rebuild(projector, on_batch=lambda n, _pos, bar=bar: bar.update(n))
                bar.update(max(bar.total - bar.n, 0))
            if result.failed_position is not None:
                failed.append(f"{projector.name} stopped at position {result.failed_position}")
            elif verbosity:
                self.stdout.write(f"{projector.name}: replayed to position {result.position}")
        if failed:
            raise CommandError("; ".join(failed) + " (see projection_status for the error)")

    def rebuild_in_processes(self, chosen: list[Projector], jobs: int, verbosity: int) -> None:
        """Empty every chosen read model, then replay each partition of each in a
        `rebuild_read_models --projector NAME --partition K` process, `jobs` at a time:
        projectors share no table, and partitions share no row. A process of its own, not a
        fork: a forked child would inherit this one's database and broker connections.
        Progress comes from the checkpoints the children move."""
        for projector in chosen:
            runtime.start_rebuild(projector)
        head = runtime.head_position()
        waiting = [part for projector in chosen for part in projector.partition_list()]
        left = {projector.name: projector.partitions for projector in chosen}
        running: dict[Partition, subprocess.Popen] = {}
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
                        continue
                    left[part.projector.name] -= 1
                    if not left[part.projector.name]:
                        part.projector.finish_replay()
                        if verbosity:
                            bar.write(f"{part.projector.name}: replayed to {head} or beyond")
                done = total - len(waiting) - len(running)
                in_progress = ProjectorCheckpoint.objects.filter(
                    name__in=[part.name for part in running]
                ).values_list("position", flat=True)
                bar.update(head * done + sum(min(p, head) for p in in_progress) - bar.n)
                time.sleep(0.2)
        if failed:
            raise CommandError(f"Rebuild failed for: {', '.join(failed)} (see its error above).")
