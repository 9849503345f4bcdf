from celery import shared_task
from django.conf import settings
from django.core.cache import cache

from apps.cqrs import blue_green, runtime
from apps.cqrs.dispatch import wake_pending_key
from apps.cqrs.projectors import registry
from config.cache import take_members


@shared_task(name="cqrs.project_slot", ignore_result=True)
def project_slot(queue: str, index: int, names: list[str] | None = None) -> int:
    """Catch a slot up: partition `index` of the named projectors on `queue`, with those that
    wake-ups added while this task was queued (apps/cqrs/dispatch.py), or of every projector
    there when `names` is None (the sweep) or those cannot be known. Safe to run any number of
    times."""
    parts = registry.slot(queue, index)
    if names is not None:
        # Before reading the log: a command committing from now on queues a new wake-up.
        gathered = take_members(
            cache, wake_pending_key(queue, index), pause=settings.CQRS_WAKE_INTERVALS.get(queue, 0)
        )
        if gathered is not None:
            parts = [part for part in parts if part.projector.name in {*names, *gathered}]
    return runtime.catch_up_together(parts)


@shared_task(name="cqrs.project", ignore_result=True)
def project(name: str, force: bool = False, partition: int | None = None) -> int:
    """Catch one partition of a projector (every partition, when None) up from its checkpoint:
    staff's "catch up now", with `force` past a failure's retry time. Safe to run any number
    of times."""
    projector = registry.get(name)
    if partition is not None and not 0 <= partition < projector.partitions:
        partition = None  # queued before the partition count changed
    return runtime.catch_up(projector, partition=partition, force=force, wait=False).applied


@shared_task(name="cqrs.build", ignore_result=True)
def build(name: str) -> int:
    """Build a new version of one read model beside the live one and switch reads to it (a
    deploy of a new projector version, staff's rebuild button). Queued twice, the second
    returns at once; a failure is recorded for the admin, and the live version serves on."""
    try:
        return blue_green.build(registry.get(name)).applied
    except (blue_green.BuildRunning, blue_green.BuildFailed):
        return 0


@shared_task(name="cqrs.sweep", ignore_result=True)
def sweep() -> None:
    """Beat's safety net: queue a catch-up of every slot, woken or not, and a build for every
    read model whose code declares a version that is not serving yet."""
    for queue, index in registry.slots():
        project_slot.apply_async((queue, index), queue=queue)
    for projector in registry.all():
        if blue_green.wanted(projector):
            build.delay(projector.name)
