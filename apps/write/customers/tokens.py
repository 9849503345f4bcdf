"""API tokens: how a customer gets one, rotates it and revokes it.

`POST /api/auth/token/` takes a username and password and answers the account's token. It is
throttled (`TOKEN_RATE`), and the log-in lockout (django-axes) counts its failures with the
pages': after LOGIN_FAILURE_LIMIT failures the account and address are locked out here too. The
profile page shows the token and rotates or revokes it (apps/storefront/views.py).
"""

from django.contrib.auth.models import AbstractBaseUser
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView


def token_for(*, user: AbstractBaseUser) -> Token | None:
    return Token.objects.filter(user_id=user.pk).first()


def token_rotate(*, user: AbstractBaseUser) -> Token:
    """A new token; the old one stops working at once."""
    Token.objects.filter(user_id=user.pk).delete()
    return Token.objects.create(user_id=user.pk)


def token_revoke(*, user: AbstractBaseUser) -> None:
    Token.objects.filter(user_id=user.pk).delete()


class TokenView(APIView):
    """Exchange a username and password for your API token (created on first use). Send it as
    `Authorization: Token <token>`."""

    permission_classes: list = []
    # A browser signed in by its session cookie must send the CSRF token too (as everywhere);
    # an API client without the cookie is not asked for one.
    authentication_classes = [SessionAuthentication]
    throttle_scope = "token"
    parser_classes = [JSONParser]

    @extend_schema(
        request=AuthTokenSerializer,
        responses={
            200: inline_serializer("TokenResult", {"token": serializers.CharField()}),
            400: OpenApiResponse(description="Unable to log in with these credentials."),
            403: OpenApiResponse(description="Locked out after too many failed log-ins."),
            429: OpenApiResponse(description="Too many requests: throttled."),
        },
        tags=["auth"],
    )
    def post(self, request):
        serializer = AuthTokenSerializer(data=request.data, context={"request": request})
        if not serializer.is_valid():
            if getattr(request, "axes_locked_out", False):  # set by django-axes
                return Response({"detail": "Too many failed log-ins: try again later."}, status=403)
            raise ValidationError(serializer.errors)
        token, _ = Token.objects.get_or_create(user=serializer.validated_data["user"])
        return Response({"token": token.key})
