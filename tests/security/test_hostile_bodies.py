"""Bodies a hostile client sends to crash the parser or exhaust memory are refused before
anything parses them: 413 for an over-large one, 400 for JSON nested too deep; JSON under /api/.
Nothing changes, and nothing answers 500."""

import pytest
from django.test import Client

from apps.cqrs.models import DomainEvent
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(databases=["default", "read"])
DEEP = b"[" * 5000 + b"]" * 5000
DEEP_OBJECT = b'{"lines": ' + b'{"a": ' * 3000 + b"1" + b"}" * 3000 + b"}"


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT], ids=["array", "object"])
@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "customer"])
def test_json_nested_too_deep_is_a_400_in_json(body, signed_in):
    client = Client()
    if signed_in:
        client.force_login(UserFactory())
    for url in ["/api/commands/place-order/", "/api/commands/sign-up/", "/api/books/"]:
        response = client.post(url, body, content_type="application/json")
        assert response.status_code == 400, url
        assert response["Content-Type"] == "application/json"
        assert response.json() == {"detail": "JSON nested deeper than 32 levels."}
    assert not DomainEvent.objects.exists()


def test_json_as_deep_as_allowed_still_reaches_the_command():
    client = Client()
    client.force_login(UserFactory())
    body = b'{"lines": [' + b"[" * 29 + b"]" * 29 + b"]}"
    response = client.post("/api/commands/place-order/", body, content_type="application/json")
    assert response.status_code == 400  # the command's own field message, not the limit's
    assert "lines" in response.json()


def test_an_over_large_body_is_a_413_before_it_is_read(settings):
    settings.REQUEST_BODY_MAX_BYTES = 10_000
    client = Client()
    client.force_login(UserFactory())
    big = b'{"shipping_address": "' + b"x" * 20_000 + b'"}'
    api = client.post("/api/commands/place-order/", big, content_type="application/json")
    assert api.status_code == 413
    assert api.json() == {"detail": "The request body is larger than 10,000 bytes."}
    page = client.post("/checkout/", {"shipping_address": "x" * 20_000})
    assert page.status_code == 413
    assert not DomainEvent.objects.exists()
