from django.db import migrations

from apps.cqrs.migration_operations import postgresql_only

# A weighted search vector PostgreSQL keeps itself (a stored generated column, so no projector
# code and no replay can let it drift), its GIN index, and a trigram index for misspellings
# (apps/read/catalog/selectors.py). Title and subtitle weigh most (A), then authors (B), then
# the description (C); the ISBN is a word of its own. PostgreSQL only: the embedded SQLite
# default searches with LIKE.
FORWARD = """
CREATE EXTENSION IF NOT EXISTS pg_trgm;
ALTER TABLE read_catalog_booklisting ADD COLUMN IF NOT EXISTS search_vector tsvector
GENERATED ALWAYS AS (
    setweight(to_tsvector('english'::regconfig, title || ' ' || subtitle), 'A')
    || setweight(to_tsvector('english'::regconfig, author_names), 'B')
    || setweight(to_tsvector('english'::regconfig, description), 'C')
    || setweight(to_tsvector('simple'::regconfig, isbn), 'A')
) STORED;
CREATE INDEX IF NOT EXISTS listing_search_vector ON read_catalog_booklisting
USING gin (search_vector);
CREATE INDEX IF NOT EXISTS listing_title_authors_trgm ON read_catalog_booklisting
USING gin ((lower(title || ' ' || author_names)) gin_trgm_ops);
DROP INDEX IF EXISTS listing_search;
"""
BACKWARD = """
DROP INDEX IF EXISTS listing_title_authors_trgm;
DROP INDEX IF EXISTS listing_search_vector;
ALTER TABLE read_catalog_booklisting DROP COLUMN IF EXISTS search_vector;
CREATE INDEX IF NOT EXISTS listing_search ON read_catalog_booklisting
USING gin (to_tsvector('english'::regconfig, COALESCE(search_text, '')));
"""


class Migration(migrations.Migration):
    dependencies = [("read_catalog", "0009_listing_language")]
    operations = [
        postgresql_only(
            app_label="read_catalog", model_name="booklisting", forward=FORWARD, backward=BACKWARD
        )
    ]
