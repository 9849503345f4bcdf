"""The admin changes the write model only through command services."""

import pytest
from django.contrib.auth import get_user_model

from apps.cqrs.models import DomainEvent
from apps.write.catalog.models import Book
from apps.write.inventory.models import StockItem
from apps.write.orders import services as orders
from apps.write.orders.models import Order
from tests.factories import (
    APPROVE,
    UserFactory,
    add_author,
    add_book,
    new_isbn,
    place_order,
    stocked_book,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    user = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-for-tests")
    client.force_login(user)
    return user


def test_adding_a_book_in_the_admin_records_book_added(client, staff):
    author = add_author(name="Mary Shelley")
    isbn = new_isbn()
    response = client.post(
        "/admin/catalog/book/add/",
        {
            "title": "Frankenstein",
            "subtitle": "",
            "isbn": f"{isbn[:3]}-{isbn[3:]}",
            "authors": [author.pk],
            "price": "8.99",
            "format": "paperback",
            "language": "en",
            "published_on": "",
            "description": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    book = Book.objects.get(isbn=isbn)
    event = DomainEvent.objects.get(event_type="BookAdded")
    assert event.payload["book_id"] == book.pk
    assert event.payload["authors"] == [{"id": author.pk, "name": "Mary Shelley"}]
    assert event.data.language == "en"
    assert (event.actor, event.command) == ("boss", "catalog.book_add")


def test_a_bad_isbn_in_the_admin_is_a_form_error(client, staff):
    author = add_author()
    response = client.post(
        "/admin/catalog/book/add/",
        {
            "title": "X",
            "isbn": "9780000000000",
            "authors": [author.pk],
            "price": "1",
            "format": "ebook",
            "language": "fr",
        },
    )
    assert response.status_code == 200
    assert "check digit" in response.content.decode()
    assert not Book.objects.exists()


def test_editing_a_price_in_the_admin_records_price_changed(client, staff):
    book = add_book(price="10.00")
    response = client.post(
        f"/admin/catalog/book/{book.pk}/change/",
        {
            "title": book.title,
            "subtitle": "New subtitle",
            "description": book.description,
            "format": book.format,
            "language": book.language,
            "published_on": "",
            "price": "11.50",
        },
    )
    assert response.status_code == 302
    types = list(
        DomainEvent.objects.filter(aggregate_type="book").values_list("event_type", flat=True)
    )
    assert types == ["BookAdded", "BookDetailsChanged", "PriceChanged"]
    assert DomainEvent.objects.get(event_type="BookDetailsChanged").payload["changes"] == {
        "subtitle": "New subtitle"
    }


def test_receiving_stock_in_the_admin_records_stock_received(client, staff):
    book = stocked_book(on_hand=2)
    response = client.post(
        f"/admin/inventory/stockitem/{book.pk}/change/",
        {"receive": "5", "adjust": "", "reason": "", "note": "Delivery 42"},
    )
    assert response.status_code == 302
    assert StockItem.objects.get(pk=book.pk).on_hand == 7
    received = DomainEvent.objects.filter(event_type="StockReceived").last()
    assert (received.payload["quantity"], received.payload["note"], received.actor) == (
        5,
        "Delivery 42",
        "boss",
    )


def test_shipping_from_the_admin_goes_through_the_state_machine(client, staff):
    customer = UserFactory()
    paid = place_order(customer, (stocked_book(), 1))
    orders.order_pay(actor=customer, order_id=paid.pk, card_number=APPROVE)
    unpaid = place_order(customer, (stocked_book(), 1))

    response = client.post(
        "/admin/orders/order/",
        {"action": "ship", "_selected_action": [paid.pk, unpaid.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert Order.objects.get(pk=paid.pk).status == "shipped"
    assert Order.objects.get(pk=unpaid.pk).status == "placed"
    assert "Cannot ship order" in response.content.decode()
    assert DomainEvent.objects.filter(event_type="OrderShipped").count() == 1


def test_the_event_log_admin_is_read_only(client, staff):
    add_author()
    event = DomainEvent.objects.get()
    assert client.get("/admin/cqrs/domainevent/").status_code == 200
    assert client.get(f"/admin/cqrs/domainevent/{event.pk}/change/").status_code == 200
    assert client.get("/admin/cqrs/domainevent/add/").status_code == 403
    assert client.post(f"/admin/cqrs/domainevent/{event.pk}/delete/").status_code == 403
    filtered = client.get(
        f"/admin/cqrs/domainevent/?aggregate_type=author&aggregate_id={event.aggregate_id}"
    )
    assert filtered.status_code == 200
    assert "1 domain event" in filtered.content.decode()
    assert DomainEvent.objects.get() == event
