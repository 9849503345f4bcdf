from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.cqrs import runtime
from apps.cqrs.projectors import registry


class Command(BaseCommand):
    help = (
        "Move a projector's checkpoints to the partition count its code now declares, without "
        "emptying its tables (docs/operations.md, 'Changing a projector's partitions')."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("projector", help="The projector's name, e.g. orders.history.")

    def handle(self, *args: Any, projector: str, **options: Any) -> None:
        try:
            chosen = registry.get(projector)
            old, position = runtime.repartition(chosen)
        except (LookupError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        new = [part.name for part in chosen.partition_list()]
        if old == new:
            self.stdout.write(f"{chosen.name} already has {chosen.partitions} partition(s).")
        else:
            self.stdout.write(
                f"{chosen.name}: {', '.join(old) or 'no checkpoint'} -> {', '.join(new)}, "
                f"all at position {position}."
            )
