"""Sends the read side to the `read` database alias and everything else to `default`.

The read side is every app under `apps/read/` plus the projector checkpoints and read-model
versions, which must live in the same database as the read rows so that a projector moves them
together in one transaction.
"""

from django.apps import apps
from django.conf import settings

from apps.cqrs.replicas import read_alias

READ_ALIAS = "read"
WRITE_ALIAS = "default"
_READ_MODELS_OUTSIDE_READ_APPS = {("cqrs", "projectorcheckpoint"), ("cqrs", "readmodelversion")}


def is_read_side(app_label: str, model_name: str | None = None) -> bool:
    if (app_label, model_name) in _READ_MODELS_OUTSIDE_READ_APPS:
        return True
    return apps.get_app_config(app_label).name.startswith("apps.read.")


class ReadWriteRouter:
    def _alias(self, model) -> str:
        if is_read_side(model._meta.app_label, model._meta.model_name):
            return READ_ALIAS
        return WRITE_ALIAS

    def db_for_read(self, model, **hints):
        alias = self._alias(model)
        # Inside a query request given a replica (apps/cqrs/replicas.py); never for writes.
        return read_alias() if alias == READ_ALIAS else alias

    def db_for_write(self, model, **hints):
        return self._alias(model)

    def allow_relation(self, obj1, obj2, **hints):
        # _meta through the instance: `type()` of a lazy request.user is SimpleLazyObject.
        return self._alias(obj1) == self._alias(obj2)

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        if db in settings.READ_REPLICA_ALIASES:
            return False  # a replica copies its primary, migrations and all
        if is_read_side(app_label, model_name):
            # Sharing the write database, the read tables are created by the plain `migrate`.
            return db == (READ_ALIAS if settings.READ_DATABASE_IS_SEPARATE else WRITE_ALIAS)
        return db == WRITE_ALIAS
