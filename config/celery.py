import atexit
import logging
import os
import shutil
import sys
import tempfile

from celery import Celery
from celery.signals import (
    task_postrun,
    task_prerun,
    worker_process_shutdown,
    worker_ready,
)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
logger = logging.getLogger(__name__)


def _metrics_directory() -> None:
    """A worker's pool processes write their metrics to one directory (apps/cqrs/metrics.py),
    which must be set before prometheus_client is imported: here, since `celery -A config`
    imports this module before Django, whose setup imports it, and before the pool forks.
    The operator's PROMETHEUS_MULTIPROC_DIR is emptied first (files of an earlier run would
    count twice); without one the worker makes its own. gunicorn.conf.py does the same for
    the web servers."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory)
    else:
        directory = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(
            prefix="bookstore-metrics-"
        )
        main = os.getpid()

        def remove() -> None:
            if os.getpid() == main:  # not in the pool's processes, which inherit the hook
                shutil.rmtree(directory, ignore_errors=True)

        atexit.register(remove)


if "worker" in sys.argv[1:] and "celery" in sys.argv[0]:
    _metrics_directory()

app = Celery("bookstore")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def close_old_connections(**kwargs) -> None:
    """Treat each task like a request: drop connections that are past CONN_MAX_AGE or broken,
    keep the rest (CELERY_DB_REUSE_MAX stops Celery from closing them all)."""
    if getattr(kwargs["task"].request, "is_eager", False):
        return  # inside a request or a test: the caller owns the connection
    from django.db import close_old_connections

    close_old_connections()


@worker_ready.connect
def serve_metrics(**kwargs) -> None:
    """With CELERY_METRICS_PORT set, the worker's main process serves its pool's metrics."""
    from django.conf import settings

    if settings.CELERY_METRICS_PORT:
        from prometheus_client import start_http_server

        from apps.cqrs.metrics import process_registry

        address, port = settings.CELERY_METRICS_ADDRESS, settings.CELERY_METRICS_PORT
        try:
            start_http_server(port, addr=address, registry=process_registry())
        except OSError as exc:  # metrics are not worth refusing to work for
            logger.error("Could not serve metrics on %s:%s: %s", address, port, exc)


@worker_process_shutdown.connect
def forget_process_metrics(pid=None, **kwargs) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid or os.getpid())
