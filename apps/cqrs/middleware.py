import logging
import re
import uuid
from collections.abc import Callable

import psycopg.errors
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.template.loader import render_to_string

from apps.cqrs.context import scope

logger = logging.getLogger(__name__)

HEADER = "X-Correlation-ID"
GetResponse = Callable[[HttpRequest], HttpResponseBase]


def _parse(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


class CorrelationIdMiddleware:
    """Gives every request a correlation id (the client's X-Correlation-ID if it is a UUID), so
    the events its commands record, and the ones they cause later, can be traced back to it."""

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        correlation_id = _parse(request.headers.get(HEADER)) or uuid.uuid4()
        with scope(correlation_id=correlation_id) as request_scope:
            # Pages read `request.cqrs_scope.last_position` to wait for their own writes.
            request.cqrs_scope = request_scope  # type: ignore[attr-defined]
            response = self.get_response(request)
        response[HEADER] = str(correlation_id)
        return response


class DatabaseUnavailableMiddleware:
    """Answers 503 with Retry-After, not 500, when the database cannot be reached, or cancelled
    a statement that ran past DATABASE_STATEMENT_TIMEOUT.

    A command whose transaction did not commit has changed nothing, and an API client that sent
    an Idempotency-Key can retry without doing anything twice. Django drops the broken
    connection at the end of the request and opens a new one on the next.
    """

    RETRY_AFTER_SECONDS = 5

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        detail = "The service is briefly unavailable. Try again in a few seconds."
        page = "The shop cannot reach its database just now. Please try again in a few seconds."
        if isinstance(exception.__cause__, psycopg.errors.QueryCanceled):
            # DATABASE_STATEMENT_TIMEOUT: the database is there; this request asked too much.
            # Not retried on the primary, which would run it again.
            detail = "This request took too long and was stopped. Try a narrower one."
            page = "This page took too long and was stopped. Please try a narrower search."
            logger.warning("Statement timed out for %s %s", request.method, request.path)
        else:
            request.database_unavailable = True  # type: ignore[attr-defined]  # replicas.py
            logger.warning(
                "Database unavailable for %s %s: %s", request.method, request.path, exception
            )
        response: HttpResponse
        if request.path.startswith("/api/"):
            response = JsonResponse({"detail": detail}, status=503)
        else:
            response = HttpResponse(render_to_string("503.html", {"message": page}), status=503)
        response["Retry-After"] = str(self.RETRY_AFTER_SECONDS)
        return response


_ESCAPES = re.compile(rb"\\.", re.DOTALL)
_STRINGS = re.compile(rb'"[^"]*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether JSON `body` nests deeper than `limit`, found without parsing it: brackets inside
    strings are dropped first (C-speed regular expressions), then the rest is counted, stopping
    as soon as the limit is passed."""
    brackets = _STRINGS.sub(b"", _ESCAPES.sub(b"", body)).translate(None, _NOT_BRACKETS)
    depth = 0
    for byte in brackets:
        depth += _DEPTH[byte]
        if depth > limit:
            return True
    return False


class RequestLimitsMiddleware:
    """Refuses, before anything parses it, a body larger than REQUEST_BODY_MAX_BYTES (413), JSON
    nested deeper than JSON_MAX_DEPTH (400; Python's parser would hit its recursion limit and
    answer 500), and a NUL character in the address or its query (400; PostgreSQL refuses NUL
    in text, and a lookup by such a key would fail as a 500). JSON under /api/, a short page
    elsewhere. First in the chain after the security and static-file middleware, so no view
    ever sees such a request. (Form fields and JSON strings with NUL are refused by the forms'
    and serializers' own validators.)"""

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit, depth = settings.REQUEST_BODY_MAX_BYTES, settings.JSON_MAX_DEPTH
        content_type = request.META.get("CONTENT_TYPE", "")
        if request.path.startswith("/admin/") and content_type.startswith("multipart/"):
            limit = settings.ADMIN_UPLOAD_MAX_BYTES  # a cover upload
        if "\x00" in request.path or "%00" in request.META.get("QUERY_STRING", ""):
            return self._refuse(request, 400, "The address holds a NUL character.")
        if length > limit:
            return self._refuse(request, 413, f"The request body is larger than {limit:,} bytes.")
        is_json = "json" in content_type
        if length and is_json and json_depth_exceeds(request.body, depth):
            return self._refuse(request, 400, f"JSON nested deeper than {depth} levels.")
        return self.get_response(request)

    @staticmethod
    def _refuse(request: HttpRequest, status: int, message: str) -> HttpResponse:
        if request.path.startswith("/api/"):
            return JsonResponse({"detail": message}, status=status)
        return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
