# Best-selling first as one number (models.POPULARITY), so that a search can walk only the
# most popular books and stop (docs/decisions/0013).
import django.db.models.expressions
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('read_catalog', '0016_listing_search_tiers'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='booklisting',
            name='listing_popular',
        ),
        migrations.AddIndex(
            model_name='booklisting',
            index=models.Index(models.OrderBy(django.db.models.expressions.RawSQL('units_sold * 4294967296 - book_id', [], output_field=models.BigIntegerField()), descending=True), name='listing_popular'),
        ),
    ]
