from django.db import migrations, router

# Author filters ask `authors @> '[{"id": N}]'` (selectors.books_by_author); jsonb_path_ops
# indexes exactly that. PostgreSQL only, like the search index.
FORWARD = """
CREATE INDEX IF NOT EXISTS listing_authors ON read_catalog_booklisting
USING gin (authors jsonb_path_ops)
"""
BACKWARD = "DROP INDEX IF EXISTS listing_authors"


def _run(sql):
    def run(apps, schema_editor):
        connection = schema_editor.connection
        if connection.vendor == "postgresql" and router.allow_migrate(
            connection.alias, "read_catalog", model_name="booklisting"
        ):
            schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("read_catalog", "0007_listing_filter_indexes")]
    operations = [migrations.RunPython(_run(FORWARD), _run(BACKWARD))]
