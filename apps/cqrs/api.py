"""What every command endpoint shares: input validation, the error mapping, and the position of
the last event recorded, so that a client can wait for its own write on the read side."""

import hashlib
import json
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from apps.cqrs.consistency import wait_for_position
from apps.cqrs.context import current_scope
from apps.cqrs.exceptions import Conflict
from apps.cqrs.models import IdempotencyKey

POSITION_HEADER = "X-Event-Position"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's handler, plus the domain's errors: Django ValidationError from a command service is
    a 400 with field messages, Conflict a 409, a missing object a 404."""
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        exc = ValidationError(detail)
    elif isinstance(exc, ObjectDoesNotExist):
        exc = NotFound(str(exc) or None)
    elif isinstance(exc, Conflict):
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    return drf_exception_handler(exc, context)


class CommandResultSerializer(serializers.Serializer):
    position = serializers.IntegerField(
        allow_null=True, help_text="Position of the last event the command recorded."
    )


class CommandSchema(AutoSchema):
    """Documents a command's response as its `result_serializer_class`, not its input."""

    def get_response_serializers(self):
        return {self.view.success_status: self.view.result_serializer_class}

    def get_tags(self):
        return ["commands"]


class CommandView(GenericAPIView):
    """POST-only endpoint for one command. Subclasses set `serializer_class` (the input),
    `result_serializer_class` (ids created, plus the position added here) and implement
    `execute`, which calls the command service and returns those ids."""

    permission_classes = [IsAdminUser]
    success_status = status.HTTP_201_CREATED
    result_serializer_class: type[serializers.Serializer] = CommandResultSerializer
    schema = CommandSchema()
    # Honour an Idempotency-Key header: a repeat gets the first response and does nothing.
    idempotent = False

    def execute(self, data: dict[str, Any]) -> dict[str, Any] | tuple[dict[str, Any], int]:
        """Run the command; return the ids it created (and, optionally, a status code)."""
        raise NotImplementedError

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if self.idempotent and key is not None:
            return self._post_once(request, key)
        return self._run(request)

    def _run(self, request: Request) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = self.execute(serializer.validated_data)
        body, code = result if isinstance(result, tuple) else (result, self.success_status)
        scope = current_scope()
        position = scope.last_position if scope else None
        headers = {POSITION_HEADER: str(position)} if position is not None else {}
        return Response({**body, "position": position}, status=code, headers=headers)

    def _post_once(self, request: Request, key: str) -> Response:
        if not 1 <= len(key) <= 100 or not key.isprintable():
            raise ValidationError({IDEMPOTENCY_HEADER: "Use 1 to 100 printable characters."})
        fingerprint = hashlib.sha256(
            json.dumps([self.get_view_name(), request.data], sort_keys=True, default=str).encode()
        ).hexdigest()
        with transaction.atomic():
            try:
                # Concurrent requests with the same key wait here on the unique index until the
                # first one commits, then find its response.
                with transaction.atomic():
                    stored = IdempotencyKey.objects.create(
                        user_id=request.user.pk,
                        key=key,
                        command=self.get_view_name(),
                        request_hash=fingerprint,
                        response_status=0,
                        response_body={},
                    )
            except IntegrityError:
                first = IdempotencyKey.objects.get(user_id=request.user.pk, key=key)
                if first.request_hash != fingerprint:
                    return Response(
                        {"detail": "This Idempotency-Key was used for a different request."},
                        status=status.HTTP_422_UNPROCESSABLE_ENTITY,
                    )
                headers = {"Idempotent-Replayed": "true"}
                position = first.response_body.get("position")
                if position is not None:
                    headers[POSITION_HEADER] = str(position)
                return Response(first.response_body, status=first.response_status, headers=headers)
            response = self._run(request)
            stored.response_status = response.status_code
            stored.response_body = response.data
            stored.save(update_fields=["response_status", "response_body"])
            return response


MIN_POSITION_HEADER = "X-Min-Position"


class ConsistentReadMixin:
    """For read-only viewsets: honour `X-Min-Position` (or `?min_position=`) by waiting, within
    a bound, for the projectors behind the view to pass it, and report on every response how
    fresh the answer is: `X-Read-Position`, `X-Read-Lag` (events) and `X-Read-Consistency`
    (`fresh`, or `stale` when the bound ran out before the position was reached)."""

    projector_names: list[str] = []

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        raw = request.headers.get(MIN_POSITION_HEADER) or request.query_params.get("min_position")
        min_position = None
        if raw not in (None, ""):
            try:
                min_position = int(raw)
            except ValueError:
                min_position = -1
            if min_position < 0:
                raise ValidationError({"min_position": "Send a position a command returned."})
        self.min_position = min_position
        self.read_consistency = wait_for_position(
            projector_names=self.projector_names, min_position=min_position
        )

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        consistency = getattr(self, "read_consistency", None)
        if consistency is not None:
            response["X-Read-Position"] = str(consistency.position)
            response["X-Read-Lag"] = str(consistency.lag)
            response["X-Read-Consistency"] = "fresh" if consistency.satisfied else "stale"
        return response
