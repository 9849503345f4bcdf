from django.db import migrations

from apps.cqrs.migration_operations import postgresql_only

# The planner's estimate of how many books contain a suggestion's text comes from the sampled
# values of the trigram index's expression. With the default 100 it often finds none of a text
# that 3 % of a million books contain, estimates its floor of 100 books, and sorts every match by
# popularity (`kestrel b`: 28,000 rows, 43 ms) instead of walking the popularity index until it
# has the few it needs (1 ms). A thousand sampled values see texts down to about 0.3 % of the
# books. Blue-green builds carry the target over (apps/cqrs/blue_green.py).
FORWARD = """
ALTER INDEX IF EXISTS listing_title_authors_trgm ALTER COLUMN 1 SET STATISTICS 1000;
ANALYZE read_catalog_booklisting;
"""
BACKWARD = """
ALTER INDEX IF EXISTS listing_title_authors_trgm ALTER COLUMN 1 SET STATISTICS -1;
"""


class Migration(migrations.Migration):
    dependencies = [("read_catalog", "0014_search_words")]
    operations = [
        postgresql_only(
            app_label="read_catalog", model_name="booklisting", forward=FORWARD, backward=BACKWARD
        )
    ]
