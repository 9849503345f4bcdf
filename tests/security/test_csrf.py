"""With CSRF checks enforced, as in production, every POST that a session cookie authenticates
(pages, admin, the session-authenticated API) is refused without a token, on every route."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.security.routes import routes, sample_path
from tests.security.test_access_matrix import sample_values, world  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "read"])


def test_every_cookie_authenticated_post_without_a_token_is_refused(world, report):  # noqa: F811
    value = sample_values(world)
    staff = Client(enforce_csrf_checks=True, raise_request_exception=False)
    staff.force_login(world["staff"])
    customer = Client(enforce_csrf_checks=True, raise_request_exception=False)
    customer.force_login(world["alice"])
    accepted, posts = [], 0
    for route in routes():
        path = sample_path(route, value)
        for client in (staff, customer):
            response = client.post(path, {"order_id": world["order"].pk, "book_id": 1})
            posts += 1
            if response.status_code != 403:
                accepted.append((path, response.status_code))
    assert accepted == []

    # The refusals are CSRF's: the same form with its token goes through
    customer.get(f"/books/{world['book'].pk}/")
    token = customer.cookies["csrftoken"].value
    added = customer.post(
        "/cart/add/", {"book_id": world["book"].pk, "quantity": 1, "csrfmiddlewaretoken": token}
    )
    assert added.status_code == 302
    assert get_user_model().objects.filter(pk=world["alice"].pk).exists()
    report("csrf", routes_posted=posts // 2, posts=posts, accepted_without_token=len(accepted))
