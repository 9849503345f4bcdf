"""Staff pages for the CQRS machinery, inside the admin: projector health, and one correlation
id's whole flow (command, events, and how far each projector has got with them)."""

import uuid

from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.cqrs import blue_green, runtime, skips, tasks
from apps.cqrs.models import DomainEvent
from apps.cqrs.projectors import Projector, registry


@staff_member_required
def projections(request: HttpRequest) -> HttpResponse:
    context = {
        **admin.site.each_context(request),
        "title": "Projections",
        "rows": [(row, registry.get(row.projector)) for row in runtime.status()],
        "versions": blue_green.status(registry.replayable()),
        "can_rebuild": request.user.has_perm("cqrs.change_projectorcheckpoint"),
    }
    return render(request, "admin/cqrs/projections.html", context)


@staff_member_required
@require_POST
def projection_action(request: HttpRequest, name: str, action: str) -> HttpResponse:
    try:
        projector = registry.get(name)
    except LookupError:
        raise Http404(name) from None
    if action == "retry":
        # Ignores the back-off: staff have looked at the error and want another try now.
        tasks.project.apply_async((name,), queue=projector.queue, kwargs={"force": True})
        messages.success(request, f"Catching up {name} now.")
    elif action == "rebuild":
        if not request.user.has_perm("cqrs.change_projectorcheckpoint"):
            raise PermissionDenied
        if not projector.replayable:
            messages.error(request, f"Not rebuilt: {name} causes side effects, never replayed.")
        elif blue_green.possible(projector) and blue_green.running(projector):
            messages.error(request, f"{name} is being built already.")
        else:
            tasks.build.delay(name)
            messages.success(
                request,
                f"Building {name} v{projector.version} beside the live one; reads switch to it "
                "once it has caught up.",
            )
    elif action == "skip":
        if not request.user.has_perm("cqrs.change_projectorcheckpoint"):
            raise PermissionDenied
        try:
            position = int(request.POST.get("position", ""))
            skips.event_skip(
                actor=request.user,
                projector_name=name,
                position=position,
                reason=request.POST.get("reason", ""),
            )
        except ValueError:
            messages.error(request, "Not skipped: no event position was sent.")
        except ValidationError as exc:
            messages.error(request, f"Not skipped: {' '.join(exc.messages)}")
        else:
            key = runtime.parked_key_at(projector, position)
            if key:
                _retry_key(request, projector, key)
            tasks.project.apply_async((name,), queue=projector.queue, kwargs={"force": True})
            messages.success(request, f"{name} skips event #{position}; the skip is in the log.")
    elif action == "retry-key":
        if not request.user.has_perm("cqrs.change_projectorcheckpoint"):
            raise PermissionDenied
        _retry_key(request, projector, request.POST.get("key", ""))
    else:
        raise Http404(action)
    return redirect("admin-projections")


def _retry_key(request: HttpRequest, projector: Projector, key: str) -> None:
    try:
        still = runtime.retry_parked(projector, key=key)
    except runtime.NotParked as exc:
        messages.error(request, str(exc))
    else:
        if still:
            messages.error(request, f"{key} failed again at event #{still['position']}.")
        else:
            messages.success(request, f"{key} is projected again.")


@staff_member_required
def flow(request: HttpRequest, correlation_id: uuid.UUID) -> HttpResponse:
    events = list(DomainEvent.objects.filter(correlation_id=correlation_id).order_by("position"))
    if not events:
        raise Http404("No event has this correlation id.")
    checkpoints = {row.name: row for row in runtime.status()}
    steps = []
    for event in events:
        runs = []
        for projector in registry.interested_in([event.event_type]):
            cp = checkpoints[projector.partition_of(event).name]
            if cp.position >= event.position:
                state = "applied"
            elif cp.failed_position == event.position:
                state = "failed"
            else:
                state = "pending"
            runs.append({"name": projector.name, "state": state})
        steps.append({"event": event, "runs": runs})
    context = {
        **admin.site.each_context(request),
        "title": f"Flow {correlation_id}",
        "steps": steps,
    }
    return render(request, "admin/cqrs/flow.html", context)
