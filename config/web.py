"""What a web process sets before Django reads its settings: config/wsgi.py and config/asgi.py
call `set_defaults` first. Workers and management commands keep the settings' own defaults."""

import os


def set_defaults() -> None:
    # No request keeps a worker and a database backend busy past this (config/settings.py).
    os.environ.setdefault("DATABASE_STATEMENT_TIMEOUT", "5s")
    # Queries plan for their own values: a search's best plan depends on its text
    # (docs/decisions/0011-prepared-statements.md).
    os.environ.setdefault("DATABASE_PREPARED_STATEMENTS", "0")
