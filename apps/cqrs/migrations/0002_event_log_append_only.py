from django.db import migrations, router

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


def _run(sql):
    def run(apps, schema_editor):
        connection = schema_editor.connection
        if connection.vendor == "postgresql" and router.allow_migrate(
            connection.alias, "cqrs", model_name="domainevent"
        ):
            schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("cqrs", "0001_initial")]
    operations = [migrations.RunPython(_run(FORWARD), _run(BACKWARD))]
