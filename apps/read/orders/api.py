import json
from collections.abc import AsyncIterator, Iterator

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import connections
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import renderers, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import IsAuthenticated

from apps.cqrs.api import ConsistentReadMixin
from apps.read.orders import selectors, streams
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


class EventStreamRenderer(renderers.BaseRenderer):
    """Lets a client that accepts only `text/event-stream` through content negotiation; the
    stream itself is a StreamingHttpResponse, so this renders only refusals (404, 429), as one
    `error` event."""

    media_type = "text/event-stream"
    format = "event-stream"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        return f"event: error\ndata: {json.dumps(data)}\n\n".encode()


# One message of the stream, as an OpenAPI 3.0/3.1 per-event schema.
STATUS_EVENT_SCHEMA = {
    "type": "object",
    "required": ["event", "id", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["status"]},
        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "The change's position."},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": "{order_id, status, at, position}",
        },
    },
}


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

    @extend_schema(
        summary="Follow an order's status changes (server-sent events)",
        description="Resumes after the `Last-Event-ID` header (browsers send it on reconnect) "
        "or `last_event_id`. A comment line comes every 15 s while nothing changes; the stream "
        "ends after CQRS_STREAM_SECONDS (300 by default) and the client reconnects.",
        parameters=[
            OpenApiParameter(
                "last_event_id",
                {"type": "integer", "minimum": 0},
                description="Resume after this message id (a position).",
            ),
        ],
        responses={(200, "text/event-stream"): STATUS_EVENT_SCHEMA},
    )
    @action(
        detail=True,
        url_path="events",
        renderer_classes=[renderers.JSONRenderer, EventStreamRenderer],
        pagination_class=None,
    )
    def events(self, request, id=None, format=None):  # a suffix (.json) changes nothing
        order = self.get_object()  # 404 for anyone but its customer and staff
        raw = request.headers.get("Last-Event-ID") or request.query_params.get("last_event_id")
        raw = (raw or "0").strip()
        if not (raw.isascii() and raw.isdigit()):
            raise ValidationError({"last_event_id": "Send the id of a message this stream sent."})
        after = int(raw)
        seconds = settings.CQRS_STREAM_SECONDS
        # Django gives a request's connections back when its response closes, which for a
        # stream is when it ends: give them back now, or every open stream would hold one.
        for connection in connections.all(initialized_only=True):
            connection.close()
        body: AsyncIterator[bytes] | Iterator[bytes]
        if isinstance(request._request, ASGIRequest):
            body = streams.live_stream(order_id=order.order_id, after=after, seconds=seconds)
        else:
            seconds = min(seconds, streams.SYNC_STREAM_SECONDS)
            body = streams.polled_stream(order_id=order.order_id, after=after, seconds=seconds)
        response = StreamingHttpResponse(body, content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx: pass each message on as it comes
        return response
