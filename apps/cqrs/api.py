"""What every command endpoint shares: input validation, the error mapping, and the position of
the last event recorded, so that a client can wait for its own write on the read side."""

from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from apps.cqrs.context import current_scope
from apps.cqrs.exceptions import Conflict

POSITION_HEADER = "X-Event-Position"


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

    def execute(self, data: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = self.execute(serializer.validated_data)
        scope = current_scope()
        position = scope.last_position if scope else None
        headers = {POSITION_HEADER: str(position)} if position is not None else {}
        return Response(
            {**result, "position": position}, status=self.success_status, headers=headers
        )
