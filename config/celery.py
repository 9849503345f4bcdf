import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("bookstore")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def close_old_connections(**kwargs) -> None:
    """Treat each task like a request: drop connections that are past CONN_MAX_AGE or broken,
    keep the rest (CELERY_DB_REUSE_MAX stops Celery from closing them all)."""
    if getattr(kwargs.get("task").request, "is_eager", False):
        return  # inside a request or a test: the caller owns the connection
    from django.db import close_old_connections

    close_old_connections()
