import datetime

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response

from apps.cqrs.api import ConsistentReadMixin
from apps.read.reports import selectors
from apps.read.reports.models import DailyRevenue, StockLevel

PERIOD_DAYS = {"day": 1, "week": 7}


class BestsellerSerializer(serializers.Serializer):
    book_id = serializers.IntegerField()
    title = serializers.CharField()
    units = serializers.IntegerField()


class RevenueSerializer(serializers.ModelSerializer):
    class Meta:
        model = DailyRevenue
        fields = ["day", "revenue", "payments", "refunds"]


class LowStockSerializer(serializers.ModelSerializer):
    class Meta:
        model = StockLevel
        fields = ["book_id", "title", "on_hand", "allow_backorder"]


def _date(params, name: str, default: datetime.date) -> datetime.date:
    raw = params.get(name)
    if not raw:
        return default
    try:
        return datetime.date.fromisoformat(raw)
    except ValueError:
        raise ValidationError({name: "Use a date like 2026-11-23."}) from None


class ReportViewSet(ConsistentReadMixin, viewsets.ViewSet):
    permission_classes = [IsAdminUser]
    projector_names = ["reports.figures"]


class BestsellerViewSet(ReportViewSet):
    """The books that sold most units in a day or a week (staff)."""

    @extend_schema(
        parameters=[
            OpenApiParameter("period", enum=list(PERIOD_DAYS), default="week"),
            OpenApiParameter("start", datetime.date, description="First day; default: today"),
        ],
        responses=BestsellerSerializer(many=True),
    )
    def list(self, request, *args, **kwargs):
        period = request.query_params.get("period") or "week"
        if period not in PERIOD_DAYS:
            raise ValidationError({"period": f"Choose one of: {', '.join(PERIOD_DAYS)}."})
        days = PERIOD_DAYS[period]
        today = timezone.now().date()
        start = _date(request.query_params, "start", today - datetime.timedelta(days=days - 1))
        rows = selectors.bestsellers(start=start, days=days)
        return Response(BestsellerSerializer(rows, many=True).data)


class RevenueViewSet(ReportViewSet):
    """Money taken per day, payments less refunds (staff)."""

    @extend_schema(
        parameters=[
            OpenApiParameter("start", datetime.date, description="Default: 29 days ago"),
            OpenApiParameter("end", datetime.date, description="Default: today"),
        ],
        responses=RevenueSerializer(many=True),
    )
    def list(self, request, *args, **kwargs):
        today = timezone.now().date()
        end = _date(request.query_params, "end", today)
        start = _date(request.query_params, "start", end - datetime.timedelta(days=29))
        if start > end or (end - start).days > 366:
            raise ValidationError({"start": "Ask for at most a year, start before end."})
        rows = selectors.revenue_per_day(start=start, end=end)
        return Response(RevenueSerializer(rows, many=True).data)


class LowStockViewSet(ReportViewSet):
    """Books still sold with few or no units on hand (staff)."""

    @extend_schema(responses=LowStockSerializer(many=True))
    def list(self, request, *args, **kwargs):
        return Response(LowStockSerializer(selectors.low_stock(), many=True).data)
