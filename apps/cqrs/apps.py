from typing import Any

from django.apps import AppConfig
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from django.utils.module_loading import autodiscover_modules


class CqrsConfig(AppConfig):
    name = "apps.cqrs"
    label = "cqrs"
    verbose_name = "Event log and projections"

    def ready(self) -> None:
        from apps.cqrs import checks, dispatch, logs, metrics  # noqa: F401  (receivers and system checks)

        # Each read app declares its projectors (and write apps their subscribers) in a module
        # of that name; importing it registers them, as the admin does with admin.py.
        autodiscover_modules("projectors", "subscribers")
        connection_created.connect(_partition_function_for_sqlite, dispatch_uid="cqrs_partition")


def _partition_function_for_sqlite(
    sender: object, connection: BaseDatabaseWrapper, **kwargs: Any
) -> None:
    """SQLite has no md5: give it Python's, so that a partition reads the same events there as
    on PostgreSQL (apps/cqrs/projectors.py, `Partition.events`)."""
    if connection.vendor == "sqlite":
        from apps.cqrs.projectors import SQL_PARTITION_FUNCTION, key_partition

        # SQLite's ->> gives a JSON number as a number, PostgreSQL's as text: both hash the text.
        connection.connection.create_function(
            SQL_PARTITION_FUNCTION,
            2,
            lambda key, count: key_partition(str(key), count),
            deterministic=True,
        )
