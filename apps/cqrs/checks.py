"""System checks: every event type a projector handles exists, and every old version of an
event can be upcast. Both fail `manage.py check` and every start-up, rather than a projector
silently matching nothing or a replay failing years into the log."""

from typing import Any

from django.core import checks

from apps.cqrs.events import event_types, missing_upcasters
from apps.cqrs.projectors import registry

CONTRACTS = "contracts"  # the tag `rebuild_read_models` runs before a replay


@checks.register(CONTRACTS)
def check_event_contracts(app_configs: object = None, **kwargs: Any) -> list[checks.CheckMessage]:
    known = event_types()
    errors: list[checks.CheckMessage] = [
        checks.Error(
            f"Projector {projector.name} handles {name!r}, which no event contract defines.",
            hint="Name the event class in `handles` (apps/contracts/) instead of a string.",
            obj=type(projector),
            id="cqrs.E001",
        )
        for projector in registry.all()
        for name in sorted(str(h) for h in projector.handles - set(known))
    ]
    errors += [
        checks.Error(
            f"No upcaster takes {step}.",
            hint="Register one with @upcaster next to the event's class (docs/contracts.md).",
            id="cqrs.E002",
        )
        for step in missing_upcasters()
    ]
    return errors
