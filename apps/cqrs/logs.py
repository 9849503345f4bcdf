"""Log lines that trace a command: one line per event, in web and worker alike.

Every event is logged once when its command commits (`event recorded`, in the process that ran
the command) and once per projector or subscriber that applies it (`event applied`, in the
worker), with the event's correlation id, causation id, command and actor, so that an
operator can follow one customer's click through every process by its correlation id.
Replays and builds log their progress instead: a line per event there would be millions.

`ScopeFilter` gives every other line of the process the same fields from the scope it was
written in (apps/cqrs/context.py), empty outside any. `LOG_FORMAT=json` writes one JSON object
per line (config/settings.py); the plain format shows the correlation id after the message.
"""

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import partial
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.dispatch import receiver

from apps.cqrs.context import current_scope
from apps.cqrs.signals import event_recorded

if TYPE_CHECKING:  # settings.LOGGING loads this module before the models are ready
    from apps.cqrs.models import DomainEvent

logger = logging.getLogger("cqrs.events")
FIELDS = ("correlation_id", "causation_id", "command", "actor", "projector")
_projector: ContextVar[str] = ContextVar("cqrs_log_projector", default="")


class ScopeFilter(logging.Filter):
    """Adds the trace fields to every record that does not carry them already."""

    def filter(self, record: logging.LogRecord) -> bool:
        scope = current_scope()
        values = {
            "correlation_id": scope.correlation_id if scope else None,
            "causation_id": scope.causation_id if scope else None,
            "command": scope.command if scope else "",
            "actor": scope.actor if scope and scope.command else "",
            "projector": _projector.get(),
        }
        for name in FIELDS:
            if not hasattr(record, name):
                value = values[name]
                setattr(record, name, "" if value is None else str(value))
        return True


@contextmanager
def projecting(name: str) -> Iterator[None]:
    """Lines written while a projector partition runs name it."""
    token = _projector.set(name)
    try:
        yield
    finally:
        _projector.reset(token)


def event_fields(event: "DomainEvent", projector: str = "") -> dict[str, Any]:
    return {
        "event_type": event.event_type,
        "position": event.position,
        "aggregate": f"{event.aggregate_type}:{event.aggregate_id}",
        "correlation_id": str(event.correlation_id),
        "causation_id": str(event.causation_id or ""),
        "command": event.command,
        "actor": event.actor,
        "projector": projector,
    }


def log_events(events: Iterable["DomainEvent"], message: str, projector: str = "") -> None:
    if logger.isEnabledFor(logging.INFO):
        for event in events:
            logger.info(
                "%s %s #%s",
                message,
                event.event_type,
                event.position,
                extra=event_fields(event, projector),
            )


@receiver(event_recorded, dispatch_uid="cqrs.log_recorded_events")
def log_recorded_events(
    sender: object, events: list["DomainEvent"], using: str, **kwargs: Any
) -> None:
    transaction.on_commit(partial(log_events, events, "event recorded"), using=using)
