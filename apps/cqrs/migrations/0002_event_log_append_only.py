from django.db import migrations

from apps.cqrs.migration_operations import postgresql_only

# The ORM refuses updates and deletes of events (apps/cqrs/models.py); this makes the database
# refuse them too, whoever asks.
FORWARD = """
CREATE OR REPLACE FUNCTION cqrs_event_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % on cqrs_domainevent is not allowed', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER cqrs_event_log_append_only
    BEFORE UPDATE OR DELETE ON cqrs_domainevent
    FOR EACH ROW EXECUTE FUNCTION cqrs_event_log_append_only();
"""
BACKWARD = """
DROP TRIGGER IF EXISTS cqrs_event_log_append_only ON cqrs_domainevent;
DROP FUNCTION IF EXISTS cqrs_event_log_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("cqrs", "0001_initial")]
    operations = [
        postgresql_only(
            app_label="cqrs", model_name="domainevent", forward=FORWARD, backward=BACKWARD
        )
    ]
