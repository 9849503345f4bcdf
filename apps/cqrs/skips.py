"""Staff's way past a poison event: skipping it is itself an event in the log, with who did it
and why, so the audit trail shows it and a replay skips the same event as live projection did
(apps/cqrs/runtime.py reads these events before every batch)."""

import dataclasses

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError

from apps.cqrs.commands import command
from apps.cqrs.events import Event
from apps.cqrs.log import record
from apps.cqrs.models import DomainEvent
from apps.cqrs.projectors import registry

MIN_REASON_LENGTH = 10


@dataclasses.dataclass(frozen=True, kw_only=True)
class ProjectionEventSkipped(Event):
    aggregate_type = "projector"
    aggregate_id_field = "projector"
    projector: str
    position: int
    skipped_event_type: str
    skipped_event_id: str
    reason: str


@command("cqrs.skip_event")
def event_skip(
    *, actor: AbstractBaseUser | AnonymousUser, projector_name: str, position: int, reason: str
) -> None:
    """Let the projector `projector_name` pass over the event at `position`, which it has
    failed to apply. Only an event it is stopped at, or has parked a key at, may be skipped, and
    only with a reason."""
    reason = reason.strip()
    if len(reason) < MIN_REASON_LENGTH:
        raise ValidationError(
            {"reason": f"Say why the event is skipped (at least {MIN_REASON_LENGTH} characters)."}
        )
    try:
        projector = registry.get(projector_name)
    except LookupError:
        raise ValidationError({"projector": f"No projector is called {projector_name}."}) from None
    checkpoints = projector.checkpoint_model._default_manager.using(projector.database).filter(
        name__in=[part.name for part in projector.partition_list()]
    )
    stopped_at = {
        position
        for cp in checkpoints
        for position in [cp.failed_position, *(p["position"] for p in cp.parked.values())]
    }
    if position not in stopped_at:
        raise ValidationError(
            {"position": f"{projector.name} is not stopped at event #{position}."}
        )
    event = DomainEvent.objects.get(position=position)
    record(
        ProjectionEventSkipped(
            projector=projector.name,
            position=position,
            skipped_event_type=event.event_type,
            skipped_event_id=str(event.event_id),
            reason=reason,
        )
    )


def skipped_positions(projector_name: str) -> set[int]:
    """Positions staff have told this projector to pass over."""
    # The payloads whole, not values_list("payload__position"): for a key of a JSON field,
    # Django's Query.setup_joins catches a FieldError and keeps it in a local, a cycle whose
    # traceback held every frame above, a replay's batch of events among them, until the
    # cyclic collector came by.
    payloads = (
        DomainEvent.objects.using("default")
        .filter(event_type=ProjectionEventSkipped.event_type, aggregate_id=projector_name)
        .values_list("payload", flat=True)
    )
    return {payload["position"] for payload in payloads}
