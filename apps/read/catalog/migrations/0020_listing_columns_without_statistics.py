from django.db import migrations

from apps.cqrs.migration_operations import postgresql_only

# No query filters, sorts or groups by these columns: they are sent (document) or searched
# through the generated vectors and the SQLite fallback (description, search_text). Their
# statistics cost ANALYZE a third of its time (1.6 s of a rebuild's switch at 60,000 books),
# the sample being large for the trigram index's target (0015). Blue-green builds carry the
# targets over (apps/cqrs/blue_green.py).
COLUMNS = ["document", "description", "search_text", "cover_small", "cover_large"]


def set_statistics(target: int) -> str:
    columns = ", ".join(f"ALTER COLUMN {column} SET STATISTICS {target}" for column in COLUMNS)
    return f"ALTER TABLE read_catalog_booklisting {columns}"


class Migration(migrations.Migration):
    dependencies = [("read_catalog", "0019_listing_title_trigrams")]

    operations = [
        postgresql_only(
            app_label="read_catalog",
            model_name="booklisting",
            forward=set_statistics(0),
            backward=set_statistics(-1),
        )
    ]
