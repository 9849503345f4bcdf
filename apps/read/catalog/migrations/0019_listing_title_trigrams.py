from django.db import migrations

from apps.cqrs.migration_operations import postgresql_only

# Suggestions look for a text in titles here and in authors' names in AuthorName (0018), so the
# listing's trigram index covers titles alone. Built and dropped CONCURRENTLY (hence one
# statement per step, outside a transaction): at a million books the migration took 20 s, and
# a plain CREATE INDEX would block the listing's projection, which writes the table. The
# statistics target is 0015's, for the same reason.
STEPS = [
    (
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS listing_title_trgm ON read_catalog_booklisting "
        "USING gin ((lower(title)) gin_trgm_ops)",
        "DROP INDEX CONCURRENTLY IF EXISTS listing_title_trgm",
    ),
    (
        "ALTER INDEX IF EXISTS listing_title_trgm ALTER COLUMN 1 SET STATISTICS 1000",
        "ALTER INDEX IF EXISTS listing_title_authors_trgm ALTER COLUMN 1 SET STATISTICS 1000",
    ),
    ("ANALYZE read_catalog_booklisting", "SELECT 1"),
    (
        "DROP INDEX CONCURRENTLY IF EXISTS listing_title_authors_trgm",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS listing_title_authors_trgm "
        "ON read_catalog_booklisting USING gin ((lower(title || ' ' || author_names)) "
        "gin_trgm_ops)",
    ),
]


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("read_catalog", "0018_author_names")]

    operations = [
        postgresql_only(
            app_label="read_catalog", model_name="booklisting", forward=forward, backward=backward
        )
        for forward, backward in STEPS
    ]
