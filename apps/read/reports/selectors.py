import datetime

from django.db.models import QuerySet, Sum

from apps.read.catalog.models import LOW_STOCK
from apps.read.reports.models import DailyRevenue, DailySales, StockLevel


def bestsellers(*, start: datetime.date, days: int, limit: int = 20) -> list[dict]:
    """Books by units sold over `days` days from `start`: a day, a week, any window."""
    return list(
        DailySales.objects.filter(day__gte=start, day__lt=start + datetime.timedelta(days=days))
        .values("book_id", "title")
        .annotate(units=Sum("units"))
        .filter(units__gt=0)
        .order_by("-units", "title")[:limit]
    )


def revenue_per_day(*, start: datetime.date, end: datetime.date) -> QuerySet[DailyRevenue]:
    return DailyRevenue.objects.filter(day__gte=start, day__lte=end).order_by("day")


def low_stock(*, threshold: int = LOW_STOCK) -> QuerySet[StockLevel]:
    return StockLevel.objects.filter(on_hand__lte=threshold, discontinued=False).order_by(
        "on_hand", "title"
    )
