from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from apps.cqrs import runtime
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

    def handle(self, *args, projectors=None, verbosity=1, **options):
        try:
            chosen = [registry.get(n) for n in projectors] if projectors else registry.replayable()
        except LookupError as exc:
            raise CommandError(str(exc)) from exc
        refused = [p.name for p in chosen if not p.replayable]
        if refused:
            raise CommandError(f"Side effects are never replayed: {', '.join(refused)}.")
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
