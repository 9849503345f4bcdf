"""How an API request carrying a token is authenticated (settings.REST_FRAMEWORK). A module of
its own, without views: DRF imports its authentication classes while it loads `views`."""

import functools

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connections, router
from django.utils.translation import gettext as _
from rest_framework import authentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed

KEY_LENGTH = 40  # Token.key's max_length


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's token authentication, answering the same, with the token and its user read by one
    statement written once per process. Building DRF's `select_related` query anew for every
    request was 13 % of a place-order request's CPU (py-spy on bench-cost's gunicorn worker).
    PostgreSQL only: its driver gives every column its Python type, which SQLite's (the
    embedded default) does not do for dates, so there DRF's own query runs."""

    def authenticate_credentials(self, key: str) -> tuple[AbstractBaseUser, Token]:
        alias = router.db_for_read(Token)
        if connections[alias].vendor != "postgresql":
            return super().authenticate_credentials(key)
        # A key longer than the column, or with a NUL PostgreSQL cannot compare, is no token.
        if len(key) > KEY_LENGTH or "\x00" in key:
            raise AuthenticationFailed(_("Invalid token."))
        sql, token_fields, user_fields = _token_and_user_statement()
        with connections[alias].cursor() as cursor:
            cursor.execute(sql, [key])
            row = cursor.fetchone()
        if row is None:
            raise AuthenticationFailed(_("Invalid token."))
        user = get_user_model().from_db(alias, user_fields, row[len(token_fields) :])
        token = Token.from_db(alias, token_fields, row[: len(token_fields)])
        token.user = user
        if not user.is_active:
            raise AuthenticationFailed(_("User inactive or deleted."))
        return user, token


@functools.cache
def _token_and_user_statement() -> tuple[str, list[str], list[str]]:
    """SELECT every column of a token and of its user, by key, and the field names of each in
    column order (as `Model.from_db` takes them)."""
    tokens, users = Token._meta, get_user_model()._meta
    quote = connections[router.db_for_read(Token)].ops.quote_name
    columns = [f"t.{quote(f.column)}" for f in tokens.concrete_fields]
    columns += [f"u.{quote(f.column)}" for f in users.concrete_fields]
    sql = (
        f"SELECT {', '.join(columns)} FROM {quote(tokens.db_table)} t"
        f" JOIN {quote(users.db_table)} u"
        f" ON u.{quote(users.pk.column)} = t.{quote(tokens.get_field('user').column)}"
        f" WHERE t.{quote(tokens.get_field('key').column)} = %s"
    )
    token_fields = [f.attname for f in tokens.concrete_fields]
    return sql, token_fields, [f.attname for f in users.concrete_fields]
