from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("cqrs", "0004_subscribercheckpoint")]
    operations = [
        migrations.CreateModel(
            name="LogHorizon",
            fields=[
                ("id", models.PositiveSmallIntegerField(default=1, primary_key=True, serialize=False)),
                ("position", models.BigIntegerField(default=0)),
            ],
        ),
    ]
