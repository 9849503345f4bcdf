"""The customer's journeys through the server-rendered pages (Django's test client)."""

import re

import pytest
from django.test import Client

from apps.cqrs import runtime
from apps.cqrs.models import DomainEvent
from apps.cqrs.projectors import registry
from apps.write.orders.models import Order
from tests.factories import UserFactory, add_author, place_order, stocked_book

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "read"])
APPROVE, DECLINE = "4242 4242 4242 4242", "4000 0000 0000 0002"


def project_all() -> None:
    for projector in registry.all():
        runtime.catch_up(projector)


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_search_cart_checkout_confirmation_and_my_orders():
    author = add_author(name="Italo Calvino")
    book = stocked_book(title="Invisible Cities", authors=[author], on_hand=4, price="14.00")
    stocked_book(title="Something Else", on_hand=4)
    project_all()
    customer = UserFactory()
    client = logged_in(customer)

    found = client.get("/books/?q=calvino").content.decode()
    assert "Invisible Cities" in found
    assert "Something Else" not in found
    assert "showing books matching" not in found
    # A misspelling finds the book, and the page says what it searched for instead
    corrected = client.get("/books/?q=invisibel+citys").content.decode()
    assert "Invisible Cities" in corrected
    assert "No book matches “invisibel citys”; showing books matching “invisible cities”" in (
        corrected
    )
    page = client.get(f"/books/{book.pk}/").content.decode()
    assert "$14.00" in page
    assert "csrfmiddlewaretoken" in page
    assert client.post("/cart/add/", {"book_id": book.pk, "quantity": 2}).status_code == 302
    assert "$28.00" in client.get("/cart/").content.decode()

    response = client.post(
        "/checkout/", {"shipping_address": "1 Elm Street", "card_number": APPROVE}
    )
    assert response.status_code == 302
    order = Order.objects.get(customer=customer)
    assert order.status == "paid"
    assert re.fullmatch(rf"/orders/{order.pk}/\?after=\d+", response["Location"])

    # No worker here: the read model has not seen the order yet, so the page says so and
    # refreshes itself instead of answering 404
    processing = client.get(response["Location"])
    assert processing.status_code == 200
    assert b"being processed" in processing.content
    assert b'http-equiv="refresh"' in processing.content

    project_all()
    confirmed = client.get(response["Location"]).content.decode()
    assert f"Order #{order.pk}: Paid" in confirmed
    assert "Invisible Cities" in confirmed
    assert f"#{order.pk}" in client.get("/orders/").content.decode()
    assert "Your cart is empty" in client.get("/cart/").content.decode()


def test_a_declined_card_is_a_form_error_and_leaves_no_order():
    book = stocked_book(on_hand=3)
    project_all()
    customer = UserFactory()
    client = logged_in(customer)
    client.post("/cart/add/", {"book_id": book.pk, "quantity": 1})

    response = client.post("/checkout/", {"shipping_address": "Here", "card_number": DECLINE})

    assert response.status_code == 200
    assert "The card was declined. Nothing was charged." in response.content.decode()
    assert not Order.objects.filter(customer=customer).exists()
    project_all()
    assert "You have no orders yet" in client.get("/orders/").content.decode()
    assert "$" in client.get("/cart/").content.decode()  # the cart is kept for another try


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"card_number": "1234 5678"}, "Enter a valid card number."),
        ({"card_number": ""}, "This field is required."),
    ],
)
def test_a_bad_card_number_is_refused_before_any_order(data, message):
    book = stocked_book()
    project_all()
    client = logged_in(UserFactory())
    client.post("/cart/add/", {"book_id": book.pk, "quantity": 1})
    events = DomainEvent.objects.count()

    response = client.post("/checkout/", {"shipping_address": "Here", **data})

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Order.objects.exists()
    assert DomainEvent.objects.count() == events


def test_out_of_stock_at_checkout_is_a_form_error():
    book = stocked_book(on_hand=2)
    project_all()
    customer = UserFactory()
    client = logged_in(customer)
    client.post("/cart/add/", {"book_id": book.pk, "quantity": 2})
    place_order(UserFactory(), (book, 1))  # sold meanwhile; the cart's page has not seen it

    response = client.post("/checkout/", {"shipping_address": "Here", "card_number": APPROVE})

    assert response.status_code == 200
    assert "Only 1 of" in response.content.decode()
    assert not Order.objects.filter(customer=customer).exists()


@pytest.mark.parametrize(
    ("url", "data"),
    [
        ("/cart/add/", {"book_id": 0, "quantity": 0}),
        ("/cart/add/", {"book_id": 987654, "quantity": 1}),
        ("/cart/add/", {"book_id": "x", "quantity": "many"}),
        ("/cart/", {"book_id": 1, "quantity": "-3"}),
    ],
)
def test_bad_cart_input_is_a_message_not_an_error(url, data):
    client = Client()
    response = client.post(url, data, follow=True)
    assert response.status_code == 200
    assert b'class="error"' in response.content
    assert "cart" not in client.session or client.session["cart"] == {}


def test_another_customers_order_is_a_404_and_cannot_be_cancelled():
    owner = UserFactory()
    order = place_order(owner, (stocked_book(), 1))
    project_all()
    stranger = logged_in(UserFactory())

    assert stranger.get(f"/orders/{order.pk}/").status_code == 404
    assert stranger.post(f"/orders/{order.pk}/cancel/").status_code == 404
    assert logged_in(owner).get(f"/orders/{order.pk}/").status_code == 200
    assert Order.objects.get(pk=order.pk).status == "placed"


def test_a_customer_cancels_from_the_order_page():
    owner = UserFactory()
    order = place_order(owner, (stocked_book(), 1))
    project_all()
    client = logged_in(owner)
    response = client.post(f"/orders/{order.pk}/cancel/")
    assert response.status_code == 302
    assert Order.objects.get(pk=order.pk).status == "cancelled"
    project_all()
    assert "Cancelled" in client.get(response["Location"]).content.decode()


def test_sign_up_logs_in_and_pages_need_a_login():
    client = Client()
    assert client.get("/orders/").status_code == 302
    assert client.get("/checkout/").status_code == 302
    response = client.post(
        "/sign-up/",
        {
            "username": "newreader",
            "email": "new@example.com",
            "full_name": "New Reader",
            "password": "a long and unusual passphrase",
            "shipping_address": "2 Elm Street",
        },
    )
    assert response.status_code == 302
    assert client.get("/orders/").status_code == 200
    taken = Client().post(
        "/sign-up/",
        {"username": "newreader", "email": "x@example.com", "full_name": "X", "password": "pw"},
    )
    assert taken.status_code == 200
    assert "That username is taken." in taken.content.decode()


def test_pages_carry_csrf_tokens_and_refuse_posts_without_them():
    book = stocked_book()
    project_all()
    client = Client(enforce_csrf_checks=True)
    assert b"csrfmiddlewaretoken" in client.get(f"/books/{book.pk}/").content
    assert client.post("/cart/add/", {"book_id": book.pk, "quantity": 1}).status_code == 403


def test_the_profile_page_shows_the_current_profile_and_saves_changes():
    client = Client()
    client.post(
        "/sign-up/",
        {
            "username": "profiled",
            "email": "p@example.com",
            "full_name": "Pat Reader",
            "password": "a long and unusual passphrase",
            "shipping_address": "3 Mill Lane",
        },
    )
    project_all()
    page = client.get("/profile/").content.decode()
    assert 'value="Pat Reader"' in page
    assert "3 Mill Lane" in page

    saved = client.post("/profile/", {"full_name": "Pat Q. Reader", "shipping_address": "4 Elm"})
    assert saved.status_code == 302
    project_all()
    assert 'value="Pat Q. Reader"' in client.get("/profile/").content.decode()
    refused = client.post("/profile/", {"full_name": "", "shipping_address": "x"})
    assert refused.status_code == 200
    assert "This field is required." in refused.content.decode()
