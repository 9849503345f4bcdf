import uuid

from apps.cqrs.context import scope

HEADER = "X-Correlation-ID"


def _parse(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


class CorrelationIdMiddleware:
    """Gives every request a correlation id (the client's X-Correlation-ID if it is a UUID), so
    the events its commands record, and the ones they cause later, can be traced back to it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        correlation_id = _parse(request.headers.get(HEADER)) or uuid.uuid4()
        with scope(correlation_id=correlation_id) as request_scope:
            # Pages read `request.cqrs_scope.last_position` to wait for their own writes.
            request.cqrs_scope = request_scope
            response = self.get_response(request)
        response[HEADER] = str(correlation_id)
        return response
