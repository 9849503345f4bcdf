from django.db import migrations

from apps.cqrs.migration_operations import postgresql_only

# Author filters ask `authors @> '[{"id": N}]'` (selectors.books_by_author); jsonb_path_ops
# indexes exactly that. PostgreSQL only, like the search index.
FORWARD = """
CREATE INDEX IF NOT EXISTS listing_authors ON read_catalog_booklisting
USING gin (authors jsonb_path_ops)
"""
BACKWARD = "DROP INDEX IF EXISTS listing_authors"


class Migration(migrations.Migration):
    dependencies = [("read_catalog", "0007_listing_filter_indexes")]
    operations = [
        postgresql_only(
            app_label="read_catalog", model_name="booklisting", forward=FORWARD, backward=BACKWARD
        )
    ]
