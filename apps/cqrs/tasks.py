from celery import shared_task
from django.core.cache import cache

from apps.cqrs import blue_green, runtime
from apps.cqrs.dispatch import wake_pending_key
from apps.cqrs.projectors import Partition, registry


@shared_task(name="cqrs.project", ignore_result=True)
def project(name: str, force: bool = False, partition: int | None = None) -> int:
    """Catch one partition of a projector (every partition, when None) up from its checkpoint.
    Safe to run any number of times."""
    projector = registry.get(name)
    if partition is not None and not 0 <= partition < projector.partitions:
        partition = None  # queued before the partition count changed
    parts = projector.partition_list() if partition is None else [Partition(projector, partition)]
    # Before reading the log: a command committing from now on queues a new wake-up.
    cache.delete_many([wake_pending_key(part.name) for part in parts])
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
    """Beat's safety net: queue a catch-up for every projector, woken or not, and a build for
    every read model whose code declares a version that is not serving yet."""
    for projector in registry.all():
        for part in projector.partition_list():
            project.apply_async((projector.name,), {"partition": part.index}, queue=projector.queue)
        if blue_green.wanted(projector):
            build.delay(projector.name)
