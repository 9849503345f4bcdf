from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404
from django.shortcuts import render

from apps.audit.history import history


@staff_member_required
def history_view(request, aggregate_type: str, aggregate_id: str):
    raw = request.GET.get("until", "")
    steps = history(
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        until=int(raw) if raw.isdigit() else None,
    )
    if not steps:
        raise Http404("No events for this aggregate.")
    context = {
        **admin.site.each_context(request),
        "title": f"History of {aggregate_type} {aggregate_id}",
        "steps": [(event, sorted(state.items())) for event, state in steps],
    }
    return render(request, "admin/audit/history.html", context)
