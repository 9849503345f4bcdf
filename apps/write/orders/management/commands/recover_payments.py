from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from apps.cqrs.context import scope
from apps.write.orders import services


class Command(BaseCommand):
    help = (
        "Settle payments, captures and refunds that a crash left between a gateway call and "
        "its record, asking the gateway what it did with each key (docs/payments.md). The beat "
        "runs it every 30 s."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=int,
            default=None,
            metavar="SECONDS",
            help="Only payments untouched this long (default PAYMENT_RECOVERY_AFTER_SECONDS).",
        )

    def handle(self, *args, older_than=None, **options):
        if older_than is not None and older_than < 0:
            raise CommandError("--older-than must be 0 or more seconds.")
        with scope():
            done = services.payments_recover(
                older_than=None if older_than is None else timedelta(seconds=older_than)
            )
        self.stdout.write(
            ", ".join(f"{kind}: {count}" for kind, count in sorted(done.items()))
            or "Nothing to recover."
        )
