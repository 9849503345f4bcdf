"""Every page and form outside the API (the storefront, the admin's own views and its model
pages), fuzzed as anonymous, customer and staff: every method, hostile values in path
arguments, query parameters and form fields (NUL bytes, 10,000 characters, huge and negative
numbers, malformed cursors and dates, unicode controls, markup). None may answer 5xx.
The API is fuzzed from its schema (test_schema_fuzzing.py)."""

import random
import re
from collections import Counter

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apps.cqrs import runtime
from apps.cqrs.projectors import registry
from tests.factories import APPROVE, UserFactory, place_order, stocked_book
from tests.security.routes import routes, sample_path

pytestmark = pytest.mark.django_db(databases=["default", "read"])
CASES_PER_ROUTE_AND_ROLE = 12
METHODS = ["GET", "GET", "GET", "POST", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
HOSTILE = [
    "", "\x00", "a\x00b", "x" * 10_000, "-1", "0", "-99999999999999999999",
    "99999999999999999999", "2147483648", "1e309", "NaN", "-Infinity", "3.5", "１２", "٣",
    "\u202e\u200bdrow", "\x1b[31m", "\x07\x08", "' OR 1=1 --", "<script>alert(1)</script>",
    "%", "%00", "../../etc/passwd", "[]", "{}", "null", "true", "2026-13-45", "0000-00-00",
    "9999-12-31", "cD0xMjM=", "!!!not-base64", "🙂" * 300, "\r\nSet-Cookie: x=1",
]  # fmt: skip
PARAMS = [
    # the catalog's filters and its keyset pagination
    "q", "author", "price_min", "price_max", "availability", "format", "language",
    "published_after", "published_before", "after_title", "after_id", "cursor", "page",
    "ordering",
    # read-your-writes, the admin's list parameters, staff forms, customer forms
    "after", "o", "p", "e", "all", "position", "reason", "key", "until", "book_id",
    "quantity", "card_number", "shipping_address", "username", "password1", "password2",
    "email", "full_name", "next", "csrfmiddlewaretoken", "action", "_selected_action",
]  # fmt: skip
# The admin's own list parameters: other names make its lists redirect to ?e=1 at once.
ADMIN_PARAMS = ["q", "o", "p", "all", "_changelist_filters"]
PATH_VALUES = {
    "int": ["0", "1", "2147483648", "99999999999999999999"],
    "uuid": ["00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"],
    "": ["x", "\x00", "a" * 300, "1%00", "..%2F"],
}


def page_routes() -> list:
    chosen = []
    for route in routes():
        if route.pattern.startswith(("api/", "static/")) or "(?P<url>" in route.pattern:
            continue  # the API has its own fuzzing; the admin's catch-all only redirects
        chosen.append(route)
    return chosen


def hostile_path(route, rng: random.Random) -> str:
    def value(name: str, pattern: str, detail: str) -> str:
        if detail in PATH_VALUES:
            return rng.choice(PATH_VALUES[detail])
        if re.fullmatch(r"\\d\+|\[0-9\]\+", detail or ""):
            return rng.choice(PATH_VALUES["int"])
        return rng.choice(PATH_VALUES[""])

    return sample_path(route, value)


def test_no_page_answers_5xx_to_hostile_input(report):
    customer = UserFactory()
    staff = get_user_model().objects.create_superuser("fuzz-boss", "b@example.com", "pw")
    book = stocked_book(on_hand=20, title="Fuzzed")
    place_order(customer, (book, 1))
    for projector in registry.all():
        runtime.catch_up(projector)
    users = {"customer": customer, "staff": staff}
    clients = {"anonymous": Client(raise_request_exception=False)}
    for role, user in users.items():
        clients[role] = Client(raise_request_exception=False)
        clients[role].force_login(user)
    rng = random.Random(2026)
    statuses: Counter[int] = Counter()
    cases: Counter[str] = Counter()
    errors = []
    chosen = page_routes()
    for route in chosen:
        for role, client in clients.items():
            for _ in range(CASES_PER_ROUTE_AND_ROLE):
                path = hostile_path(route, rng)
                method = rng.choice(METHODS)
                names = PARAMS
                if route.pattern.startswith("admin/") and rng.random() < 0.5:
                    names = ADMIN_PARAMS
                data = {name: rng.choice(HOSTILE) for name in rng.sample(names, rng.randint(1, 3))}
                if rng.random() < 0.2:
                    data["book_id"], data["quantity"] = str(book.pk), rng.choice(HOSTILE)
                if method == "POST" and rng.random() < 0.3:
                    data["card_number"] = APPROVE
                call = getattr(client, method.lower())
                response = call(path, data) if method in ("GET", "HEAD", "POST") else call(path)
                statuses[response.status_code] += 1
                if role in users and "_auth_user_id" not in client.session:
                    client.force_login(users[role])  # a case logged it out

                cases[route.pattern] += 1
                if response.status_code >= 500:
                    errors.append((role, method, path[:120], {k: v[:40] for k, v in data.items()}))
    report(
        "page fuzzing",
        routes=len(chosen),
        cases=sum(cases.values()),
        cases_per_route=CASES_PER_ROUTE_AND_ROLE * len(clients),
        server_errors=len(errors),
        statuses=dict(sorted(statuses.items())),
    )
    assert errors == [], "\n".join(map(repr, errors))
