from django.db import migrations, router


def postgresql_only(*, app_label: str, model_name: str, forward: str, backward: str):
    """A migration step of raw SQL that runs only on PostgreSQL, and only on the database the
    model is routed to (the embedded SQLite default does without it)."""

    def run(sql: str):
        def apply(apps, schema_editor):
            connection = schema_editor.connection
            if connection.vendor == "postgresql" and router.allow_migrate(
                connection.alias, app_label, model_name=model_name
            ):
                # params=None: the SQL is sent as written ('%' in PL/pgSQL is not a placeholder).
                schema_editor.execute(sql, params=None)

        return apply

    return migrations.RunPython(run(forward), run(backward))
