from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from apps.cqrs.models import DomainEvent
from apps.write.catalog.models import Author, Book
from tests.factories import StaffFactory, UserFactory, add_author, add_book, new_isbn

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client():
    client = APIClient()
    client.force_authenticate(StaffFactory())
    return client


def state():
    return (Book.objects.count(), Author.objects.count(), DomainEvent.objects.count())


def test_staff_adds_a_book_and_gets_its_id_and_event_position(staff_client):
    author = add_author()
    response = staff_client.post(
        "/api/commands/add-book/",
        {"title": "Dawn", "isbn": new_isbn(), "author_ids": [author.pk], "price": "9.90"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    event = DomainEvent.objects.get(event_type="BookAdded")
    assert response.json() == {"book_id": event.payload["book_id"], "position": event.position}
    assert response["X-Event-Position"] == str(event.position)
    assert event.actor == staff_client.handler._force_user.username


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"isbn": "9780316229295"}, "isbn"),  # wrong check digit
        ({"isbn": "12345"}, "isbn"),
        ({"price": "-1.00"}, "price"),
        ({"price": "10.123"}, "price"),
        ({"price": "abc"}, "price"),
        ({"author_ids": []}, "author_ids"),
        ({"author_ids": [999999]}, "author_ids"),
        ({"author_ids": "1"}, "author_ids"),
        ({"title": ""}, "title"),
        ({"format": "scroll"}, "format"),
        # JSON types are the schema's: no 12.5 for "12.50", no 7 for a title, no "1" for an id
        ({"price": 12.5}, "price"),
        ({"title": 7}, "title"),
        ({"author_ids": ["1"]}, "author_ids"),
        ({"published_on": 20260101}, "published_on"),
    ],
)
def test_bad_input_is_a_400_with_field_messages_and_changes_nothing(staff_client, change, field):
    author = add_author()
    body = {"title": "Dawn", "isbn": new_isbn(), "author_ids": [author.pk], "price": "9.90"}
    before = state()
    response = staff_client.post("/api/commands/add-book/", {**body, **change}, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert state() == before


def test_a_duplicate_isbn_is_refused(staff_client):
    book = add_book()
    before = state()
    response = staff_client.post(
        "/api/commands/add-book/",
        {"title": "Again", "isbn": book.isbn, "author_ids": [book.authors.get().pk], "price": "1"},
        format="json",
    )
    assert response.status_code == 400
    assert "already in the catalog" in response.json()["isbn"][0]
    assert state() == before


def test_malformed_json_is_a_400(staff_client):
    response = staff_client.post(
        "/api/commands/add-book/", "{not json", content_type="application/json"
    )
    assert response.status_code == 400


@pytest.mark.parametrize("who", ["anonymous", "customer"])
def test_only_staff_run_catalog_commands(who):
    client = APIClient()
    if who == "customer":
        client.force_authenticate(UserFactory())
    author = add_author()
    before = state()
    response = client.post(
        "/api/commands/add-book/",
        {"title": "Dawn", "isbn": new_isbn(), "author_ids": [author.pk], "price": "9.90"},
        format="json",
    )
    # Anonymous requests have no credentials to reject (401 or 403); a customer's are refused.
    assert response.status_code in ({401, 403} if who == "anonymous" else {403})
    assert state() == before


def test_change_price_of_an_unknown_book_is_a_404(staff_client):
    before = state()
    response = staff_client.post(
        "/api/commands/change-price/", {"book_id": 424242, "price": "3.00"}, format="json"
    )
    assert response.status_code == 404
    assert state() == before


def test_change_price_records_old_and_new_price(staff_client):
    book = add_book(price="10.00")
    response = staff_client.post(
        "/api/commands/change-price/", {"book_id": book.pk, "price": "12.00"}, format="json"
    )
    assert response.status_code == 200
    book.refresh_from_db()
    assert book.price == Decimal("12.00")
    event = DomainEvent.objects.get(event_type="PriceChanged")
    assert event.payload == {"book_id": book.pk, "old_price": "10.00", "new_price": "12.00"}


def test_commands_take_json_only(staff_client):
    response = staff_client.post("/api/commands/add-author/", {"name": "Form Poster"})
    assert response.status_code == 415
    assert not Author.objects.exists()
