from rest_framework import serializers, viewsets
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import IsAuthenticated

from apps.cqrs.api import ConsistentReadMixin
from apps.read.orders import selectors
from apps.read.orders.models import OrderSummary


class OrderSummarySerializer(serializers.ModelSerializer):
    id = serializers.IntegerField(source="order_id", read_only=True)

    class Meta:
        model = OrderSummary
        fields = [
            "id",
            "customer_id",
            "status",
            "total",
            "refunded",
            "item_count",
            "lines",
            "shipping_address",
            "cancel_reason",
            "timeline",
            "placed_at",
            "updated_at",
            "position",
        ]


class OrderCursorPagination(CursorPagination):
    ordering = ("-placed_at", "-order_id")
    page_size = 20


class OrderViewSet(ConsistentReadMixin, viewsets.ReadOnlyModelViewSet):
    """Your orders (staff: everyone's), newest first, from the order history read model.
    Send X-Min-Position with a command's position to see your own write."""

    serializer_class = OrderSummarySerializer
    pagination_class = OrderCursorPagination
    permission_classes = [IsAuthenticated]
    lookup_field = "order_id"
    lookup_url_kwarg = "id"
    projector_names = ["orders.history"]

    def get_queryset(self):
        user = self.request.user
        orders = selectors.order_summaries(customer_id=None if user.is_staff else user.pk)
        if user.is_staff:
            for field in ("status", "customer_id"):
                value = self.request.query_params.get(field)
                if value:
                    orders = orders.filter(**{field: value})
        return orders
