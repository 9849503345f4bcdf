import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    """E-mails are recorded as notifications and sent after the subscriber's transaction
    commits (apps/write/orders/emails.py). Rows from before were sent when they were made."""

    dependencies = [
        ("orders", "0004_constraint_messages"),
    ]

    operations = [
        migrations.RenameModel("NotificationSent", "Notification"),
        migrations.AlterField(
            model_name="notification",
            name="sent_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="notification",
            name="body",
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name="notification",
            name="created_at",
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
        migrations.AddField(
            model_name="notification",
            name="attempted_at",
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
        migrations.AddField(
            model_name="notification",
            name="attempts",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.RunSQL(
            "UPDATE orders_notification SET created_at = sent_at, attempted_at = sent_at, "
            "attempts = 1",
            migrations.RunSQL.noop,
        ),
        migrations.AddIndex(
            model_name="notification",
            index=models.Index(
                condition=models.Q(("sent_at__isnull", True)),
                fields=["attempted_at"],
                name="notification_unsent",
            ),
        ),
    ]
