"""Every route the project serves, from the URL configuration, against anonymous, a customer,
another customer and staff: nobody reads or changes another customer's order or profile, and
nobody but staff reaches the admin, staff reports or staff commands."""

import json

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from rest_framework.permissions import IsAdminUser

from apps.cqrs import runtime
from apps.cqrs.models import DomainEvent
from apps.cqrs.projectors import registry
from apps.write.customers import services as customers
from apps.write.orders.models import Order
from tests.factories import place_order, stocked_book
from tests.security.routes import routes, sample_path, view_class

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "read"])

# What only Alice, or staff, may ever see
SECRETS = ["alice-secret@example.com", "Alice Secretname", "27 Secret Lane"]
PUBLIC_ADMIN = {"/admin/login/"}
PASSWORD = "a long and unusual passphrase"


@pytest.fixture
def world():
    users = get_user_model().objects
    alice = customers.customer_sign_up(
        username="alice", email="alice-secret@example.com", password=PASSWORD,
        full_name="Alice Secretname", shipping_address="Flat 9, 27 Secret Lane",
    ).user  # fmt: skip
    bob = customers.customer_sign_up(
        username="bob", email="bob@example.com", password=PASSWORD, full_name="Bob Other"
    ).user
    staff = users.create_superuser("chief", "chief@example.com", PASSWORD)
    book = stocked_book(on_hand=5)
    order = place_order(alice, (book, 1), address="Flat 9, 27 Secret Lane")
    for projector in registry.all():
        runtime.catch_up(projector)
    return {"alice": alice, "bob": bob, "staff": staff, "book": book, "order": order}


def sample_values(world):
    order = world["order"]
    correlation = DomainEvent.objects.filter(aggregate_type="order").first().correlation_id
    alice = world["alice"]

    def admin_object(pattern: str) -> str:
        app_label, model_name = pattern.split("/")[1:3]
        model = apps.get_model(app_label, model_name)
        if model is Order:
            return str(order.pk)
        if model is get_user_model():
            return str(alice.pk)
        if model._meta.model_name == "customer":
            return str(model.objects.get(user=alice).pk)
        first = model.objects.using(model.objects.db).first()
        return str(first.pk) if first else "1"

    def value(name: str, pattern: str, body: str) -> str:
        if name == "app_label":
            return "orders"
        if name == "format":
            return ".json" if body == "drf_format_suffix" else "json"
        if name == "object_id":
            if pattern.startswith("admin/r/"):
                return str(order.pk)
            return admin_object(pattern)
        if name in {"id", "pk"}:
            return str(world["book"].pk if "books" in pattern else order.pk)
        return {
            "book_id": str(world["book"].pk),
            "author_id": str(world["book"].authors.first().pk),
            "order_id": str(order.pk),
            "content_type_id": str(ContentType.objects.get_for_model(Order).pk),
            "correlation_id": str(correlation),
            "name": "catalog.book_listing",
            "action": "retry",
            "aggregate_type": "order",
            "aggregate_id": str(order.pk),
            "uidb64": "MQ",
            "token": "set-password",
            "url": "nothing-here/",
            "path": "covers/nothing-here.jpg",
        }[name]

    return value


def clients(world) -> dict[str, Client]:
    # Server errors are counted, not raised, so that one does not hide the rest of the matrix.
    signed_in = {}
    for role in ("alice", "bob", "staff"):
        signed_in[role] = Client(raise_request_exception=False)
        signed_in[role].force_login(world[role])
    return {"anonymous": Client(raise_request_exception=False), **signed_in}


def staff_only(route) -> bool:
    cls = view_class(route)
    return route.pattern.startswith("admin/") or (
        cls is not None and IsAdminUser in getattr(cls, "permission_classes", [])
    )


def read_body(response) -> str:
    """The body, or of an event stream its first message (under the test client a stream polls
    for 25 s before it ends)."""
    if not response.streaming:
        return response.content.decode(errors="replace")
    first = next(iter(response.streaming_content), b"")
    response.close()
    return first.decode(errors="replace")


def test_no_route_leaks_a_customers_data_or_a_staff_page(world, report):
    value = sample_values(world)
    every = [(route, sample_path(route, value)) for route in routes()]
    users = clients(world)
    leaks, errors, checked = [], [], 0
    for route, path in every:
        for role, client in users.items():
            response = client.get(path, HTTP_ACCEPT="text/html,application/json")
            checked += 1
            if response.status_code >= 500:
                errors.append((role, path, response.status_code))
            body = read_body(response)
            if role in {"anonymous", "bob"} and any(secret in body for secret in SECRETS):
                leaks.append((role, path, response.status_code, "shows Alice's data"))
            if (
                role != "staff"
                and staff_only(route)
                and path not in PUBLIC_ADMIN
                and 200 <= response.status_code < 300
            ):
                leaks.append((role, path, response.status_code, "staff only"))
    assert checked >= 4 * 100
    # The matrix is meaningful only if the owner and staff do see what the others must not
    assert "27 Secret Lane" in users["alice"].get(f"/orders/{world['order'].pk}/").content.decode()
    assert users["staff"].get(f"/admin/orders/order/{world['order'].pk}/change/").status_code == 200
    assert leaks == []
    assert errors == []
    report("access matrix: reads", routes=len(every), roles=len(users), checks=checked,
           leaks=len(leaks), server_errors=len(errors))  # fmt: skip


def test_no_one_but_alice_or_staff_changes_her_order_or_profile(world, report):
    value = sample_values(world)
    order = world["order"]
    before = (
        Order.objects.get(pk=order.pk).status,
        DomainEvent.objects.filter(aggregate_type="order", aggregate_id=str(order.pk)).count(),
        DomainEvent.objects.filter(actor_id=world["alice"].pk).count(),
    )
    # Everything a form or a command might take, aimed at Alice's order
    form = {"order_id": order.pk, "reason": "Not yours", "card_number": "4242 4242 4242 4242",
            "full_name": "Mallory", "shipping_address": "Elsewhere", "book_id": world["book"].pk,
            "quantity": 1}  # fmt: skip
    users = clients(world)
    refused, attempts, leaks = 0, 0, []
    for route in routes():
        path = sample_path(route, value)
        for role in ("anonymous", "bob"):
            client = users[role]
            if path.startswith("/api/"):
                response = client.post(path, json.dumps(form), content_type="application/json")
            else:
                response = client.post(path, form)
            attempts += 1
            if response.status_code >= 500:
                leaks.append((role, path, response.status_code))
            elif staff_only(route) and path not in PUBLIC_ADMIN:
                if response.status_code not in (302, 401, 403, 404, 405):
                    leaks.append((role, path, response.status_code))
                else:
                    refused += 1
    after = (
        Order.objects.get(pk=order.pk).status,
        DomainEvent.objects.filter(aggregate_type="order", aggregate_id=str(order.pk)).count(),
        DomainEvent.objects.filter(actor_id=world["alice"].pk).count(),
    )
    assert after == before
    assert leaks == []
    report("access matrix: changes", posts=attempts, staff_routes_refused=refused,
           events_added_to_alices_order=after[1] - before[1], leaks=len(leaks))  # fmt: skip
