import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from apps.cqrs import runtime
from apps.cqrs.models import ProjectorCheckpoint
from apps.cqrs.projectors import registry


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
            help="Rebuild this many projectors at once, each in a process of its own.",
        )

    def handle(self, *args, projectors=None, jobs=1, verbosity=1, **options):
        try:
            chosen = [registry.get(n) for n in projectors] if projectors else registry.replayable()
        except LookupError as exc:
            raise CommandError(str(exc)) from exc
        refused = [p.name for p in chosen if not p.replayable]
        if refused:
            raise CommandError(f"Side effects are never replayed: {', '.join(refused)}.")
        if jobs < 1:
            raise CommandError("--jobs must be 1 or more.")
        if jobs > 1 and len(chosen) > 1:
            self.rebuild_in_processes([p.name for p in chosen], jobs, verbosity)
            return
        head = runtime.head_position()
        failed = []
        for projector in chosen:
            with tqdm(
                total=head,
                desc=projector.name,
                unit="pos",
                disable=verbosity == 0,
                file=self.stderr._out,
            ) as bar:
                result = runtime.rebuild(
                    projector, on_batch=lambda _n, pos, bar=bar: bar.update(pos - bar.n)
                )
                bar.update(max(result.position - bar.n, 0))
            if result.failed_position is not None:
                failed.append(f"{projector.name} stopped at position {result.failed_position}")
            elif verbosity:
                self.stdout.write(f"{projector.name}: replayed to position {result.position}")
        if failed:
            raise CommandError("; ".join(failed) + " (see projection_status for the error)")

    def rebuild_in_processes(self, names: list[str], jobs: int, verbosity: int) -> None:
        """One `rebuild_read_models --projector NAME` process per projector, `jobs` at a time:
        projectors share no table, so their replays are independent. A process of its own,
        not a fork: a forked child would inherit this one's database and broker connections.
        Progress comes from the checkpoints the children move."""
        head = runtime.head_position()
        waiting, running, failed = list(names), {}, []
        with tqdm(
            total=head * len(names),
            desc=f"{len(names)} projectors, {jobs} at a time",
            unit="pos",
            disable=verbosity == 0,
            file=self.stderr._out,
        ) as bar:
            while waiting or running:
                while waiting and len(running) < jobs:
                    name = waiting.pop(0)
                    manage = str(settings.BASE_DIR / "manage.py")
                    argv = [manage, "rebuild_read_models", "--projector", name, "-v", "0"]
                    running[name] = subprocess.Popen([sys.executable, *argv])
                for name, process in list(running.items()):
                    if process.poll() is not None:
                        del running[name]
                        if process.returncode:
                            failed.append(name)
                        elif verbosity:
                            bar.write(f"{name}: replayed to position {head} or beyond")
                done = len(names) - len(waiting) - len(running)
                in_progress = ProjectorCheckpoint.objects.filter(name__in=running).values_list(
                    "position", flat=True
                )
                bar.update(head * done + sum(min(p, head) for p in in_progress) - bar.n)
                time.sleep(0.2)
        if failed:
            raise CommandError(f"Rebuild failed for: {', '.join(failed)} (see its error above).")
