"""Every command endpoint against anonymous, customer, another customer and staff."""

import pytest
from rest_framework.test import APIClient

from apps.cqrs.models import DomainEvent
from apps.write.catalog import services as catalog
from apps.write.orders import services
from config.urls import command_routes
from tests.factories import (
    APPROVE,
    WAREHOUSE,
    StaffFactory,
    UserFactory,
    new_isbn,
    place_order,
    stocked_book,
)

STAFF_ONLY = {
    "add-author",
    "add-book",
    "change-price",
    "rename-author",
    "change-book-details",
    "discontinue-book",
    "reinstate-book",
    "receive-stock",
    "adjust-stock",
    "set-backorders",
    "ship-order",
    "deliver-order",
}
OWN_ORDER = {"pay-order", "cancel-order"}
ANY_SIGNED_IN = {"place-order", "checkout", "update-profile"}
ANYONE = {"sign-up"}


def test_every_command_endpoint_has_a_declared_audience():
    names = {name for _route, _view, name in command_routes}
    assert names == STAFF_ONLY | OWN_ORDER | ANY_SIGNED_IN | ANYONE


def valid_body(name, *, book, order, author_id):
    return {
        "add-author": {"name": "Someone New"},
        "add-book": {"title": "T", "isbn": new_isbn(), "author_ids": [author_id], "price": "1"},
        "change-price": {"book_id": book.pk, "price": "99.00"},
        "rename-author": {"author_id": author_id, "name": "Renamed Author"},
        "change-book-details": {"book_id": book.pk, "subtitle": "A new subtitle"},
        "discontinue-book": {"book_id": book.pk},
        "reinstate-book": {"book_id": book.pk},
        "receive-stock": {"book_id": book.pk, "quantity": 1},
        "adjust-stock": {"book_id": book.pk, "change": -1, "reason": "damage"},
        "set-backorders": {"book_id": book.pk, "allowed": True},
        "ship-order": {"order_id": order.pk},
        "deliver-order": {"order_id": order.pk},
        "pay-order": {"order_id": order.pk, "card_number": APPROVE},
        "cancel-order": {"order_id": order.pk},
        "place-order": {"lines": [{"book_id": book.pk, "quantity": 1}], "shipping_address": "X"},
        "checkout": {
            "lines": [{"book_id": book.pk, "quantity": 1}],
            "shipping_address": "X",
            "card_number": APPROVE,
        },
        "update-profile": {"full_name": "New Name", "shipping_address": "Elsewhere"},
        "sign-up": {
            "username": f"new{new_isbn()}",
            "email": "new@example.com",
            "password": "a long and unusual passphrase",
            "full_name": "New Person",
        },
    }[name]


def expected_status(name, role):
    if name in ANYONE:
        return "ok"
    if role == "anonymous":
        return "denied"
    if name in STAFF_ONLY:
        return "ok" if role == "staff" else "denied"
    if name in OWN_ORDER:
        return {"owner": "ok", "staff": "ok", "other": "hidden"}[role]
    return "ok"


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["anonymous", "owner", "other", "staff"])
@pytest.mark.parametrize("name", sorted(STAFF_ONLY | OWN_ORDER | ANY_SIGNED_IN | ANYONE))
def test_command_permission_matrix(name, role):
    owner = UserFactory()
    book = stocked_book(on_hand=5)
    order = place_order(owner, (book, 1))
    if name == "reinstate-book":
        catalog.book_discontinue(actor=None, book_id=book.pk)
    if name == "ship-order":
        services.order_pay(actor=owner, order_id=order.pk, card_number=APPROVE)
    if name == "deliver-order":
        services.order_pay(actor=owner, order_id=order.pk, card_number=APPROVE)
        services.order_ship(actor=WAREHOUSE, order_id=order.pk)
    users = {"owner": owner, "other": UserFactory(), "staff": StaffFactory(), "anonymous": None}
    client = APIClient()
    if users[role]:
        client.force_authenticate(users[role])
    events_before = DomainEvent.objects.count()

    response = client.post(
        f"/api/commands/{name}/",
        valid_body(name, book=book, order=order, author_id=book.authors.get().pk),
        format="json",
    )

    outcome = expected_status(name, role)
    if outcome == "ok":
        assert response.status_code in (200, 201), response.json()
        assert DomainEvent.objects.count() > events_before
    else:
        allowed = {"denied": {401, 403}, "hidden": {404}}[outcome]
        assert response.status_code in allowed, (response.status_code, response.json())
        assert DomainEvent.objects.count() == events_before
