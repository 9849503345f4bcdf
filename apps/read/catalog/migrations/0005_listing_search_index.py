from django.db import migrations, router

# The same expression as selectors.SEARCH_VECTOR, so that searches use the index. PostgreSQL
# only: the embedded SQLite default searches with LIKE instead.
FORWARD = """
CREATE INDEX IF NOT EXISTS listing_search ON read_catalog_booklisting
USING gin (to_tsvector('english'::regconfig, COALESCE(search_text, '')))
"""
BACKWARD = "DROP INDEX IF EXISTS listing_search"


def _run(sql):
    def run(apps, schema_editor):
        connection = schema_editor.connection
        if connection.vendor == "postgresql" and router.allow_migrate(
            connection.alias, "read_catalog", model_name="booklisting"
        ):
            schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("read_catalog", "0004_listing_search_text")]
    operations = [migrations.RunPython(_run(FORWARD), _run(BACKWARD))]
