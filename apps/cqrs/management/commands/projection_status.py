from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.cqrs import runtime


class Command(BaseCommand):
    help = "Show each projector's checkpoint, the head of the log, lag and last error."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--errors", action="store_true", help="Print full error tracebacks.")

    def handle(self, *args: Any, errors: bool = False, **options: Any) -> None:
        rows = runtime.status()
        header = f"{'projector':32} {'checkpoint':>10} {'head':>10} {'lag':>8} {'lag s':>8}  error"
        self.stdout.write(header)
        for row in rows:
            error = row.last_error.strip().splitlines()[-1] if row.last_error else ""
            if row.failed_position is not None:
                error = (
                    f"at #{row.failed_position}, attempt {row.attempts}, "
                    f"retry {row.retry_at:%H:%M:%S}: {error}"
                )
            self.stdout.write(
                f"{row.name:32} {row.position:>10} {row.head:>10} {row.lag_events:>8} "
                f"{row.lag_seconds:>8.1f}  {error}"
            )
            if errors and row.last_error:
                self.stdout.write(row.last_error)
            for key, entry in row.parked.items():
                error = entry["error"].strip().splitlines()[-1] if entry["error"] else ""
                self.stdout.write(
                    f"  parked {key} at #{entry['position']} ({entry['event_type']}), "
                    f"attempt {entry['attempts']}: {error}"
                )
                if errors:
                    self.stdout.write(entry["error"])
