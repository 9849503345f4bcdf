from collections.abc import Callable
from typing import Any

from django.db import migrations, router
from django.db.backends.base.schema import BaseDatabaseSchemaEditor


def postgresql_only(
    *, app_label: str, model_name: str, forward: str, backward: str
) -> migrations.RunPython:
    """A migration step of raw SQL that runs only on PostgreSQL, and only on the database the
    model is routed to (the embedded SQLite default does without it)."""

    def run(sql: str) -> Callable[[Any, BaseDatabaseSchemaEditor], None]:
        def apply(apps: Any, schema_editor: BaseDatabaseSchemaEditor) -> None:
            connection = schema_editor.connection
            if connection.vendor == "postgresql" and router.allow_migrate(
                connection.alias, app_label, model_name=model_name
            ):
                # params=None: the SQL is sent as written ('%' in PL/pgSQL is not a placeholder).
                schema_editor.execute(sql, params=None)

        return apply

    return migrations.RunPython(run(forward), run(backward))
