import logging
import uuid

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string

from apps.cqrs.context import scope

logger = logging.getLogger(__name__)

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


class DatabaseUnavailableMiddleware:
    """Answers 503 with Retry-After, not 500, when the database cannot be reached.

    A command whose transaction did not commit has changed nothing, and an API client that sent
    an Idempotency-Key can retry without doing anything twice. Django drops the broken
    connection at the end of the request and opens a new one on the next.
    """

    RETRY_AFTER_SECONDS = 5

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        logger.warning(
            "Database unavailable for %s %s: %s", request.method, request.path, exception
        )
        if request.path.startswith("/api/"):
            response = JsonResponse(
                {"detail": "The service is briefly unavailable. Try again in a few seconds."},
                status=503,
            )
        else:
            response = HttpResponse(render_to_string("503.html"), status=503)
        response["Retry-After"] = str(self.RETRY_AFTER_SECONDS)
        return response
