from django.db import migrations, models

from apps.cqrs.migration_operations import postgresql_only

# A unique CharField also gets, on PostgreSQL, an index with varchar_pattern_ops for
# LIKE 'prefix%' lookups. No query of the listing makes one: ISBNs are looked up whole, through
# the unique index, and the admin's `=isbn` search compares them case-blind, which neither index
# serves. Yet every order updates its books' rows outside HOT (units_sold is indexed), so that
# index took an entry for each, and a rebuild built it anew (72 ms a rebuild at 60,000 books on
# a slow hour). A UniqueConstraint keeps the uniqueness without it. The unique constraint the
# table has is renamed, not made again: on a large listing that would hold its writers.
FORWARD = """
DROP INDEX IF EXISTS read_catalog_booklisting_isbn_97a13f09_like;
DO $$
DECLARE found name;
BEGIN
    SELECT conname INTO found FROM pg_constraint
    WHERE conrelid = 'read_catalog_booklisting'::regclass AND contype = 'u'
      AND conkey = ARRAY[(SELECT attnum FROM pg_attribute
                          WHERE attrelid = 'read_catalog_booklisting'::regclass
                            AND attname = 'isbn')];
    IF found IS NOT NULL AND found <> 'listing_isbn_unique' THEN
        EXECUTE format('ALTER TABLE read_catalog_booklisting RENAME CONSTRAINT %I TO %I',
                       found, 'listing_isbn_unique');
    END IF;
END $$;
"""
BACKWARD = """
ALTER TABLE read_catalog_booklisting
RENAME CONSTRAINT listing_isbn_unique TO read_catalog_booklisting_isbn_key;
CREATE INDEX IF NOT EXISTS read_catalog_booklisting_isbn_97a13f09_like
ON read_catalog_booklisting (isbn varchar_pattern_ops);
"""


class Migration(migrations.Migration):
    dependencies = [("read_catalog", "0020_listing_columns_without_statistics")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="booklisting",
                    name="isbn",
                    field=models.CharField(max_length=13),
                ),
                migrations.AddConstraint(
                    model_name="booklisting",
                    constraint=models.UniqueConstraint(
                        fields=("isbn",), name="listing_isbn_unique"
                    ),
                ),
            ],
            database_operations=[
                postgresql_only(
                    app_label="read_catalog",
                    model_name="booklisting",
                    forward=FORWARD,
                    backward=BACKWARD,
                )
            ],
        )
    ]
