"""What every command endpoint shares: input validation, the error mapping, and the position of
the last event recorded, so that a client can wait for its own write on the read side."""

import hashlib
import json
import time
from typing import TYPE_CHECKING, Any, cast

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import IntegrityError, transaction
from django.http import HttpResponseBase
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers, status
from rest_framework.exceptions import NotAuthenticated, ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import JSONParser
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from apps.cqrs.consistency import (
    MIN_POSITION_HEADER,
    PositionBeyondHead,
    ReadConsistency,
    wait_for_position,
    waited_upstream,
)
from apps.cqrs.context import current_scope
from apps.cqrs.errors import refusal
from apps.cqrs.models import IdempotencyKey

POSITION_HEADER = "X-Event-Position"
IDEMPOTENCY_HEADER = "Idempotency-Key"
# How long a repeat waits for the first request with its key to finish, when that one runs
# outside the key's transaction (CommandView.own_transactions).
IDEMPOTENCY_WAIT_SECONDS = 5.0


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, after the domain's refusals (apps/cqrs/errors.py): field messages for
    validation and declined payments, {"detail": ...} for the others."""
    if (refused := refusal(exc)) is not None:
        body: dict[str, Any] = refused.fields or {"detail": refused.message}
        return Response(body, status=refused.status)
    return drf_exception_handler(exc, context)


# The JSON type each kind of input field takes, as the schema documents it. DRF would also
# take 0 for false, 12 for "12" and "3" for 3; a command takes what its schema says, no more.
_JSON_TYPES = [
    (serializers.BooleanField, (bool,), "Must be true or false."),
    (serializers.IntegerField, (int,), "Must be a whole number."),
    (serializers.CharField, (str,), "Must be a string."),
    (serializers.ChoiceField, (str,), "Must be a string."),
    (serializers.DecimalField, (str,), 'Must be a string, like "12.50".'),
    (serializers.DateField, (str,), 'Must be a string, like "2026-11-23".'),
]


def json_type_errors(serializer: serializers.BaseSerializer[Any], data: Any) -> dict[str, Any]:
    """Field messages for values whose JSON type differs from the schema's (nested too)."""
    if not isinstance(data, dict) or not isinstance(serializer, serializers.Serializer):
        return {}
    errors: dict[str, Any] = {}
    for name, field in serializer.fields.items():
        value = data.get(name)
        if field.read_only or value is None:
            continue
        if isinstance(field, (serializers.ListSerializer, serializers.ListField)) and isinstance(
            value, list
        ):
            child = field.child
            if isinstance(child, serializers.Serializer):
                nested = [json_type_errors(child, item) for item in value]
                if any(nested):
                    errors[name] = nested
            elif child is not None and any(not _json_type_ok(child, item) for item in value):
                errors[name] = [_json_type_message(child)]
        elif isinstance(field, serializers.Serializer):
            if inner := json_type_errors(field, value):
                errors[name] = inner
        elif not _json_type_ok(field, value):
            errors[name] = [_json_type_message(field)]
    return errors


def _json_type_ok(field: serializers.Field[Any, Any, Any, Any], value: Any) -> bool:
    for kind, types, _message in _JSON_TYPES:
        if isinstance(field, kind):
            return isinstance(value, types) and not (types == (int,) and isinstance(value, bool))
    return True


def _json_type_message(field: serializers.Field[Any, Any, Any, Any]) -> str:
    return next(message for kind, _types, message in _JSON_TYPES if isinstance(field, kind))


class CommandResultSerializer(serializers.Serializer[Any]):
    position = serializers.IntegerField(
        allow_null=True, help_text="Position of the last event the command recorded."
    )


def _error(description: str) -> OpenApiResponse:
    # Field errors ({"field": ["message"]}) and {"detail": "message"} alike.
    return OpenApiResponse(response=OpenApiTypes.OBJECT, description=description)


class CommandSchema(AutoSchema):
    """Documents a command's response as its `result_serializer_class`, not its input, with the
    errors a command answers."""

    # drf-spectacular takes a dict of status codes here, which its annotation leaves out.
    def get_response_serializers(self) -> dict[int, Any]:  # type: ignore[override]
        view = cast("CommandView", self.view)
        responses: dict[int, Any] = {
            view.success_status: view.result_serializer_class,
            400: _error("Invalid input: messages per field. Nothing was changed."),
            404: _error("An object the command names does not exist (or is not yours)."),
            409: _error("The command conflicts with the current state (stock, order status)."),
            **{code: _error(text) for code, text in view.error_responses.items()},
        }
        if view.idempotent:
            responses[422] = _error("This Idempotency-Key was used for a different request.")
        return responses

    def get_tags(self) -> list[str]:
        return ["commands"]


class CommandView(GenericAPIView[Any]):
    """POST-only endpoint for one command. Subclasses set `serializer_class` (the input),
    `result_serializer_class` (ids created, plus the position added here) and implement
    `execute`, which calls the command service and returns those ids."""

    permission_classes = [IsAdminUser]
    # Commands take JSON only: their input has nested lists that form encodings cannot carry,
    # and a form's "absent means false" would turn a missing field into a decision.
    parser_classes = [JSONParser]
    success_status: int = status.HTTP_201_CREATED
    result_serializer_class: type[serializers.Serializer[Any]] = CommandResultSerializer
    schema = CommandSchema()
    # Honour an Idempotency-Key header: a repeat gets the first response and does nothing.
    idempotent = False
    # True for commands that call the outside world between transactions of their own (the
    # payments): an Idempotency-Key then cannot share their transaction.
    own_transactions = False
    # Other answers the command may give, for the schema: {status: description}.
    error_responses: dict[int, str] = {}

    @property
    def actor(self) -> AbstractBaseUser:
        """The signed-in user the command runs for; the view's permissions let in no other."""
        user = self.request.user
        if isinstance(user, AnonymousUser):
            raise NotAuthenticated()
        return user

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
        if errors := json_type_errors(serializer, request.data):
            raise ValidationError(errors)
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
        if self.own_transactions:
            return self._post_once_between_transactions(request, key, fingerprint)
        with transaction.atomic():
            try:
                # Concurrent requests with the same key wait here on the unique index until the
                # first one commits, then find its response.
                with transaction.atomic():
                    stored = self._claim(request, key, fingerprint)
            except IntegrityError:
                return self._replay(request, key, fingerprint)
            response = self._run(request)
            self._keep(stored, response)
            return response

    def _post_once_between_transactions(
        self, request: Request, key: str, fingerprint: str
    ) -> Response:
        """For commands that call the outside world between transactions of their own: the key
        is claimed in a transaction of its own, the command runs, and its response is kept.
        A repeat sent meanwhile waits a little for it, then hears it is still running; a failed
        command gives its key back. Should the process die mid-command, the key stays claimed
        (a retry hears 409) while the command's own records let recovery finish its work
        (docs/payments.md)."""
        try:
            with transaction.atomic():
                stored = self._claim(request, key, fingerprint)
        except IntegrityError:
            deadline = time.monotonic() + IDEMPOTENCY_WAIT_SECONDS
            while time.monotonic() < deadline and self._running(request, key):
                time.sleep(0.1)
            return self._replay(request, key, fingerprint)
        try:
            response = self._run(request)
        except BaseException:
            IdempotencyKey.objects.filter(pk=stored.pk).delete()
            raise
        self._keep(stored, response)
        return response

    def _claim(self, request: Request, key: str, fingerprint: str) -> IdempotencyKey:
        return IdempotencyKey.objects.create(
            user_id=_user_id(request),
            key=key,
            command=self.get_view_name(),
            request_hash=fingerprint,
            response_status=0,
            response_body={},
        )

    @staticmethod
    def _running(request: Request, key: str) -> bool:
        return IdempotencyKey.objects.filter(
            user_id=_user_id(request), key=key, response_status=0
        ).exists()

    @staticmethod
    def _keep(stored: IdempotencyKey, response: Response) -> None:
        stored.response_status = response.status_code
        stored.response_body = response.data
        stored.save(update_fields=["response_status", "response_body"])

    def _replay(self, request: Request, key: str, fingerprint: str) -> Response:
        first = IdempotencyKey.objects.filter(user_id=_user_id(request), key=key).first()
        if first is None or first.response_status == 0:
            return Response(
                {"detail": "A request with this Idempotency-Key is still running; retry later."},
                status=status.HTTP_409_CONFLICT,
            )
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


def document_common_responses(
    result: dict[str, Any], generator: object, request: object, public: bool
) -> dict[str, Any]:
    """drf-spectacular post-processing hook: every operation may answer 401 or 403 (a bad
    token, a missing permission), 429 (throttled) and 503 (database away); a query also 400
    (a bad filter) and 404 (an unknown id or cursor), and takes empty query parameters; a
    required string input needs a character other than a space."""
    common = {
        "401": "Authentication credentials were not provided or are invalid.",
        "403": "You do not have permission to perform this action.",
        "429": "Too many requests; retry after the time given.",
        "503": "The database is briefly unavailable; retry after the time given.",
    }
    # DRF strips the spaces around a string before it checks that it is not blank.
    for name, component in result.get("components", {}).get("schemas", {}).items():
        for field in component.get("properties", {}).values() if name.endswith("Request") else []:
            plain = not {"format", "pattern", "enum"} & set(field)
            if field.get("type") == "string" and field.get("minLength", 0) >= 1 and plain:
                field["pattern"] = r"\S"
    query = {"400": "Invalid query parameters.", "404": "Not found."}
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            # Queries read an empty parameter as an absent one (an empty form field).
            for parameter in operation.get("parameters", []):
                if method == "get" and parameter.get("in") == "query":
                    parameter["allowEmptyValue"] = True
            responses = operation.setdefault("responses", {})
            for code, text in (common | (query if method == "get" else {})).items():
                responses.setdefault(
                    code,
                    {
                        "description": text,
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                )
    return result


def _user_id(request: Request) -> int:
    """Idempotency keys belong to a customer: idempotent commands are for signed-in users."""
    if request.user.pk is None:
        raise NotAuthenticated()
    return int(request.user.pk)


# The mixin extends DRF's views; type checkers see that base, Python the plain object.
if TYPE_CHECKING:
    _ViewBase = APIView
else:
    _ViewBase = object


class ConsistentReadMixin(_ViewBase):
    """For read-only viewsets: honour `X-Min-Position` (or `?min_position=`) by waiting, within
    a bound, for the projectors behind the view to pass it, and report on every response how
    fresh the answer is: `X-Read-Position`, `X-Read-Lag` (events) and `X-Read-Consistency`
    (`fresh`, or `stale` when the bound ran out before the position was reached)."""

    projector_names: list[str] = []

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        raw = request.headers.get(MIN_POSITION_HEADER) or request.query_params.get("min_position")
        min_position = None
        if raw:
            try:
                min_position = int(raw)
            except ValueError:
                min_position = -1
            if min_position < 0:
                raise ValidationError({"min_position": "Send a position a command returned."})
        self.min_position = min_position
        try:
            self.read_consistency = wait_for_position(
                projector_names=self.projector_names,
                min_position=min_position,
                timeout=0 if waited_upstream(request) else None,
            )
        except PositionBeyondHead as exc:
            raise ValidationError(
                {"min_position": f"{exc} Send a position a command returned."}
            ) from exc

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        consistency = getattr(self, "read_consistency", None)
        if consistency is not None:
            add_consistency_headers(response, consistency)
        return response


def add_consistency_headers(response: HttpResponseBase, consistency: ReadConsistency) -> None:
    """Say how fresh a read is: the position it reflects, how far behind the log's head, and
    whether it reached the position the client asked for."""
    response["X-Read-Position"] = str(consistency.position)
    response["X-Read-Lag"] = str(consistency.lag)
    response["X-Read-Consistency"] = "fresh" if consistency.satisfied else "stale"
