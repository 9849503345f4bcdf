"""The staff reports page: revenue per day as a bar chart (inline SVG, drawn here), this week's
bestsellers and the low-stock list, all from the reports read model."""

import datetime
from decimal import Decimal

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import render
from django.utils import timezone

from apps.read.reports import selectors

DAYS = 30
CHART_WIDTH, CHART_HEIGHT = 720, 200


def revenue_bars(*, end: datetime.date, days: int = DAYS) -> list[dict]:
    """One bar per day, zero-filled, scaled to the chart's height."""
    start = end - datetime.timedelta(days=days - 1)
    by_day = {r.day: r.revenue for r in selectors.revenue_per_day(start=start, end=end)}
    values = [by_day.get(start + datetime.timedelta(days=i), Decimal("0")) for i in range(days)]
    top = max([*values, Decimal("1")])
    slot = CHART_WIDTH / days
    return [
        {
            "day": start + datetime.timedelta(days=i),
            "revenue": value,
            "x": round(i * slot + 1, 1),
            "width": round(slot - 2, 1),
            "height": round(float(max(value, Decimal(0)) / top) * (CHART_HEIGHT - 20), 1),
        }
        for i, value in enumerate(values)
    ]


@staff_member_required
def reports(request):
    today = timezone.now().date()
    bars = revenue_bars(end=today)
    context = {
        **admin.site.each_context(request),
        "title": "Reports",
        "bars": bars,
        "chart_width": CHART_WIDTH,
        "chart_height": CHART_HEIGHT,
        "total": sum(bar["revenue"] for bar in bars),
        "bestsellers": selectors.bestsellers(start=today - datetime.timedelta(days=6), days=7),
        "low_stock": selectors.low_stock(),
    }
    return render(request, "admin/reports/reports.html", context)
