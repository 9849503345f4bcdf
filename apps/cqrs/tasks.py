from contextlib import suppress

from celery import shared_task
from django.core.cache import cache

from apps.cqrs import runtime
from apps.cqrs.dispatch import wake_pending_key
from apps.cqrs.projectors import registry


@shared_task(name="cqrs.project", ignore_result=True)
def project(name: str, force: bool = False) -> int:
    """Catch one projector up from its checkpoint. Safe to run any number of times."""
    # Before reading the head: a command committing from now on queues a new wake-up.
    with suppress(Exception):
        cache.delete(wake_pending_key(name))
    return runtime.catch_up(registry.get(name), force=force, wait=False).applied


@shared_task(name="cqrs.rebuild", ignore_result=True)
def rebuild(name: str) -> int:
    """Empty one read model and replay the log into it (staff's rebuild button)."""
    return runtime.rebuild(registry.get(name)).applied


@shared_task(name="cqrs.sweep", ignore_result=True)
def sweep() -> None:
    """Beat's safety net: queue a catch-up for every projector, woken or not."""
    for projector in registry.all():
        project.apply_async((projector.name,), queue=projector.queue)
