from apps.cqrs import runtime
from apps.cqrs.projectors import registry


def replay_one_event_per_batch(name: str) -> None:
    """Empty a projector's tables and apply the log again one event per batch, as a live worker
    woken by every command sees it (a rebuild takes thousands per batch)."""
    projector = registry.get(name)
    runtime.start_rebuild(projector)
    runtime.catch_up(projector, batch_size=1)
