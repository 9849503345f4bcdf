"""The API's throttle (apps/cqrs/throttling.py): DRF's scoped rates, one number per client and
scope in Redis, refilled evenly."""

import time

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(databases=["default", "read"])
BODY = {"full_name": "A Reader", "shipping_address": "Here"}


@pytest.fixture
def customer_rate(monkeypatch):
    def set_rate(rate: str) -> APIClient:
        monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "customer-commands", rate)
        cache.clear()
        client = APIClient()
        client.force_authenticate(UserFactory())
        return client

    return set_rate


def update_profile(client: APIClient):
    return client.post("/api/commands/update-profile/", BODY, format="json")


def test_a_client_may_send_its_limit_at_once_then_one_each_period_over_limit(customer_rate):
    client = customer_rate("2/s")
    assert [update_profile(client).status_code for _ in range(3)] == [200, 200, 429]
    refused = update_profile(client)
    assert refused.status_code == 429
    assert refused["Retry-After"] in ("0", "1")  # DRF prints whole seconds of the 0.5 s left
    time.sleep(0.55)
    # Half the period later, one more: the limit refills evenly. A count of the requests in
    # the last period (DRF's own) would still hold the first two and refuse it.
    assert [update_profile(client).status_code for _ in range(2)] == [200, 429]


def test_the_wait_a_refused_client_is_told_is_the_time_until_its_next_request_may_go(
    customer_rate,
):
    client = customer_rate("3/min")
    assert [update_profile(client).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert 19 <= int(update_profile(client)["Retry-After"]) <= 20


def test_a_clients_count_is_one_number_however_high_its_rate(customer_rate):
    client = customer_rate("100000/hour")
    for _ in range(60):
        assert update_profile(client).status_code == 200
    server = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])
    keys = server.keys("*throttle_customer-commands_*")
    assert len(keys) == 1
    # DRF would keep the time of each of the 60 requests in a pickled list
    assert server.type(keys[0]) == b"string"
    assert server.strlen(keys[0]) <= 20
