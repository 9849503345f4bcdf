"""API tokens: got with a username and password (throttled, and locked out with the log-in),
seen, rotated and revoked on the profile page."""

import pytest
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from tests.factories import UserFactory, place_order, stocked_book
from tests.read.test_orders_api import project_all

pytestmark = pytest.mark.django_db(databases=["default", "read"])
PASSWORD = "correct horse battery"


def ask(username: str, password: str):
    return APIClient().post(
        "/api/auth/token/", {"username": username, "password": password}, format="json"
    )


def test_a_customer_gets_a_token_that_opens_the_api_as_them():
    customer = UserFactory()
    response = ask(customer.username, PASSWORD)
    assert response.status_code == 200
    key = response.json()["token"]
    assert ask(customer.username, PASSWORD).json()["token"] == key  # the same one, not another
    orders = APIClient().get("/api/orders/", HTTP_AUTHORIZATION=f"Token {key}")
    assert orders.status_code == 200


def test_wrong_credentials_are_a_400_and_enough_of_them_lock_the_account_out(settings):
    customer = UserFactory()
    assert ask(customer.username, "wrong").status_code == 400
    assert ask("nobody", PASSWORD).status_code == 400
    for _ in range(settings.AXES_FAILURE_LIMIT):
        ask(customer.username, "wrong")
    # Locked out: even the right password is refused now
    locked = ask(customer.username, PASSWORD)
    assert locked.status_code == 403
    assert not Token.objects.filter(user=customer).exists()


def test_asking_for_tokens_is_throttled(monkeypatch):
    rates = {**ScopedRateThrottle.THROTTLE_RATES, "token": "3/min"}
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", rates)
    cache.clear()
    customer = UserFactory()
    answers = [ask(customer.username, PASSWORD).status_code for _ in range(5)]
    assert answers == [200, 200, 200, 429, 429]


def test_the_profile_page_shows_rotates_and_revokes_the_token(client):
    customer = UserFactory()
    client.force_login(customer)
    assert "You have no API token." in client.get("/profile/").content.decode()

    client.post("/profile/token/", {"action": "rotate"})
    first = Token.objects.get(user=customer).key
    assert first in client.get("/profile/").content.decode()

    client.post("/profile/token/", {"action": "rotate"})
    second = Token.objects.get(user=customer).key
    assert second != first
    api = APIClient()
    assert api.get("/api/orders/", HTTP_AUTHORIZATION=f"Token {first}").status_code in (401, 403)
    assert api.get("/api/orders/", HTTP_AUTHORIZATION=f"Token {second}").status_code == 200

    client.post("/profile/token/", {"action": "revoke"})
    assert not Token.objects.filter(user=customer).exists()
    assert api.get("/api/orders/", HTTP_AUTHORIZATION=f"Token {second}").status_code in (401, 403)


def test_a_token_opens_the_api_as_its_account_only_while_the_account_is_active():
    customer = UserFactory()
    mine = place_order(customer, (stocked_book(on_hand=5), 1))
    place_order(UserFactory(), (stocked_book(on_hand=5), 1))
    project_all()
    key = Token.objects.create(user=customer).key
    api = APIClient(HTTP_AUTHORIZATION=f"Token {key}")
    assert [o["id"] for o in api.get("/api/orders/").json()["results"]] == [mine.pk]
    customer.is_active = False
    customer.save()
    refused = api.get("/api/orders/")
    # 403, not 401: the first authentication class (the session's) names no scheme to retry with
    assert refused.status_code == 403
    assert refused.json() == {"detail": "User inactive or deleted."}


@pytest.mark.parametrize("key", ["not-a-token", "a" * 41, "abc\x00def", "é" * 40])
def test_an_unknown_or_malformed_token_is_refused(key):
    # A NUL once reached PostgreSQL, which refused it: a server error
    refused = APIClient().get("/api/orders/", HTTP_AUTHORIZATION=f"Token {key}")
    assert refused.status_code == 403
    assert refused.json()["detail"].startswith("Invalid token")
