"""Integration messages: what other systems receive of the shop's events, on RabbitMQ.

A message is a domain event in its current shape (the published language, apps/contracts/),
as versioned JSON:

    {"id": "<event id>", "type": "OrderPlaced", "version": 1, "position": 1204,
     "occurred_at": "2026-11-29T16:40:00.123456+00:00",
     "aggregate": {"type": "order", "id": "17", "version": 1},
     "data": {...the event's fields...}}

with message_id = event id, correlation_id = the command's, and the event type, schema version
and causation id in the headers. It goes to the topic exchange INTEGRATION_EXCHANGE with a
routing key `<context>.<aggregate>.<event>`, such as `orders.order.placed` or
`catalog.book.price_changed`: consumers bind what they want (`orders.#`, `*.*.cancelled`).
"""

import re

from apps.cqrs.events import as_json, event_class
from apps.cqrs.models import DomainEvent


def routing_key(event_type: str) -> str:
    cls = event_class(event_type)
    context = cls.__module__.rsplit(".", 1)[-1]
    words = re.findall(r"[A-Z][a-z0-9]*", event_type)
    aggregate = cls.aggregate_type
    if words and words[0].lower() == aggregate:
        words = words[1:]
    return f"{context}.{aggregate}.{'_'.join(w.lower() for w in words)}"


def message_of(event: DomainEvent) -> tuple[dict, dict, str]:
    """(body, AMQP properties and headers, routing key) of one event."""
    data = event.data
    body = {
        "id": str(event.event_id),
        "type": event.event_type,
        "version": type(data).schema_version,
        "position": event.position,
        "occurred_at": event.recorded_at.isoformat(),
        "aggregate": {
            "type": event.aggregate_type,
            "id": event.aggregate_id,
            "version": event.aggregate_version,
        },
        "data": as_json(data),
    }
    properties = {
        "message_id": str(event.event_id),
        "correlation_id": str(event.correlation_id),
        "delivery_mode": 2,  # persistent (content type: the publisher's JSON serializer sets it)
        "headers": {
            "event-type": event.event_type,
            "schema-version": type(data).schema_version,
            "causation-id": str(event.causation_id) if event.causation_id else "",
        },
    }
    return body, properties, routing_key(event.event_type)
