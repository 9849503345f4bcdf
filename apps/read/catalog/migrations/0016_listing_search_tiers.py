from django.db import migrations

from apps.cqrs.migration_operations import postgresql_only

# What a search ranks by (docs/decisions/0013): whether every word of it is in the title and
# subtitle (title_vector), else in those and the authors' names (names_vector), else anywhere
# (search_vector, 0010); best-selling first within each. Columns of their own, not weights of
# search_vector, so that ANALYZE samples each: the planner then knows how many books have a
# word in their title, and walks the popularity index for a common one instead of sorting all
# its matches. Stored and generated, like search_vector, so no projector or replay can let
# them drift.
FORWARD = """
ALTER TABLE read_catalog_booklisting
ADD COLUMN IF NOT EXISTS title_vector tsvector GENERATED ALWAYS AS (
    to_tsvector('english'::regconfig, title || ' ' || subtitle)
) STORED,
ADD COLUMN IF NOT EXISTS names_vector tsvector GENERATED ALWAYS AS (
    to_tsvector('english'::regconfig, title || ' ' || subtitle || ' ' || author_names)
) STORED;
CREATE INDEX IF NOT EXISTS listing_title_vector ON read_catalog_booklisting
USING gin (title_vector);
CREATE INDEX IF NOT EXISTS listing_names_vector ON read_catalog_booklisting
USING gin (names_vector);
ANALYZE read_catalog_booklisting;
"""
BACKWARD = """
DROP INDEX IF EXISTS listing_names_vector;
DROP INDEX IF EXISTS listing_title_vector;
ALTER TABLE read_catalog_booklisting DROP COLUMN IF EXISTS names_vector,
DROP COLUMN IF EXISTS title_vector;
"""


class Migration(migrations.Migration):
    dependencies = [("read_catalog", "0015_suggestion_statistics")]
    operations = [
        postgresql_only(
            app_label="read_catalog", model_name="booklisting", forward=FORWARD, backward=BACKWARD
        )
    ]
