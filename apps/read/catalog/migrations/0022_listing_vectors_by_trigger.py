from django.db import migrations

from apps.cqrs.migration_operations import postgresql_only

# The three search vectors (0010, 0016) were generated columns, each its own expression: a row
# written parsed its title and subtitle three times and its authors' names twice, and an upsert
# that changed only the units sold parsed them all again, twice (the proposed row, then the
# update). A trigger parses each text once, and an update that leaves the texts as they were
# keeps the row's vectors. A rebuild's 60,000 listings: 2.9 s of PostgreSQL's CPU -> 2.0 s
# (INSERT ... SELECT, psql). As before, no projector or replay writes the vectors: the trigger
# sets them on every insert and update.
#
# `names_vector` is now the title's vector followed by the names', not one parse of the texts
# joined: positions differ where a title ends in stop words (562 of bench-cost's 60,000), which
# only a phrase spanning a title's end and an author's name could tell. Listing version 6
# rebuilds every row this way (docs/upgrades.md); until it switches, old rows keep their values.
#
# DROP EXPRESSION keeps each column's values and rewrites nothing: a brief lock, at any size.
FORWARD = """
CREATE OR REPLACE FUNCTION read_catalog_listing_vectors() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    titles tsvector;
    names tsvector;
BEGIN
    IF TG_OP = 'UPDATE'
       AND (NEW.title, NEW.subtitle, NEW.author_names, NEW.description, NEW.isbn)
           IS NOT DISTINCT FROM
           (OLD.title, OLD.subtitle, OLD.author_names, OLD.description, OLD.isbn) THEN
        NEW.title_vector := OLD.title_vector;
        NEW.names_vector := OLD.names_vector;
        NEW.search_vector := OLD.search_vector;
        RETURN NEW;
    END IF;
    titles := to_tsvector('english'::regconfig, NEW.title || ' ' || NEW.subtitle);
    names := to_tsvector('english'::regconfig, NEW.author_names);
    NEW.title_vector := titles;
    NEW.names_vector := titles || names;
    NEW.search_vector := setweight(titles, 'A') || setweight(names, 'B')
        || setweight(to_tsvector('english'::regconfig, NEW.description), 'C')
        || setweight(to_tsvector('simple'::regconfig, NEW.isbn), 'A');
    RETURN NEW;
END $$;
ALTER TABLE read_catalog_booklisting
ALTER COLUMN search_vector DROP EXPRESSION IF EXISTS,
ALTER COLUMN title_vector DROP EXPRESSION IF EXISTS,
ALTER COLUMN names_vector DROP EXPRESSION IF EXISTS;
CREATE TRIGGER listing_vectors BEFORE INSERT OR UPDATE ON read_catalog_booklisting
FOR EACH ROW EXECUTE FUNCTION read_catalog_listing_vectors();
"""
# Back to generated columns: a column cannot become one again, so they are made anew, with
# their indexes (the table is rewritten under its lock, as 0010 and 0016 did).
BACKWARD = """
DROP TRIGGER IF EXISTS listing_vectors ON read_catalog_booklisting;
DROP FUNCTION IF EXISTS read_catalog_listing_vectors();
ALTER TABLE read_catalog_booklisting
DROP COLUMN search_vector, DROP COLUMN title_vector, DROP COLUMN names_vector;
ALTER TABLE read_catalog_booklisting
ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english'::regconfig, title || ' ' || subtitle), 'A')
    || setweight(to_tsvector('english'::regconfig, author_names), 'B')
    || setweight(to_tsvector('english'::regconfig, description), 'C')
    || setweight(to_tsvector('simple'::regconfig, isbn), 'A')
) STORED,
ADD COLUMN title_vector tsvector GENERATED ALWAYS AS (
    to_tsvector('english'::regconfig, title || ' ' || subtitle)
) STORED,
ADD COLUMN names_vector tsvector GENERATED ALWAYS AS (
    to_tsvector('english'::regconfig, title || ' ' || subtitle || ' ' || author_names)
) STORED;
CREATE INDEX listing_search_vector ON read_catalog_booklisting USING gin (search_vector);
CREATE INDEX listing_title_vector ON read_catalog_booklisting USING gin (title_vector);
CREATE INDEX listing_names_vector ON read_catalog_booklisting USING gin (names_vector);
ANALYZE read_catalog_booklisting;
"""


class Migration(migrations.Migration):
    dependencies = [("read_catalog", "0021_listing_isbn_without_pattern_index")]
    operations = [
        postgresql_only(
            app_label="read_catalog", model_name="booklisting", forward=FORWARD, backward=BACKWARD
        )
    ]
