from django.core.management.base import BaseCommand, CommandError

from apps.audit.checks import audit, repair


class Command(BaseCommand):
    help = (
        "Compare the read models with what the write tables imply (price, availability, order "
        "status and totals); print the differences and exit non-zero when there are any."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--repair", action="store_true", help="Rebuild the rows that differ from the log."
        )

    def handle(self, *args, **options):
        differences = audit()
        for difference in differences:
            self.stdout.write(str(difference))
        if not differences:
            self.stdout.write("The read models agree with the write model.")
            return
        if not options["repair"]:
            raise CommandError(f"{len(differences)} difference(s) found.", returncode=1)
        repair(differences)
        remaining = audit()
        for difference in remaining:
            self.stdout.write(f"still: {difference}")
        if remaining:
            raise CommandError(f"{len(remaining)} difference(s) left after repair.", returncode=1)
        self.stdout.write(f"Repaired {len(differences)} difference(s).")
