from django.db import migrations

from apps.cqrs.migration_operations import postgresql_only

# The same expression as selectors.SEARCH_VECTOR, so that searches use the index. PostgreSQL
# only: the embedded SQLite default searches with LIKE instead.
FORWARD = """
CREATE INDEX IF NOT EXISTS listing_search ON read_catalog_booklisting
USING gin (to_tsvector('english'::regconfig, COALESCE(search_text, '')))
"""
BACKWARD = "DROP INDEX IF EXISTS listing_search"


class Migration(migrations.Migration):
    dependencies = [("read_catalog", "0004_listing_search_text")]
    operations = [
        postgresql_only(
            app_label="read_catalog", model_name="booklisting", forward=FORWARD, backward=BACKWARD
        )
    ]
