"""The stumbles a new shopper met (issue 18's page list): errors shown once, the guest's way to
the checkout, the cart's remove button, count and stock limit, and a clear confirmation."""

import datetime

import pytest
from django.test import Client

from apps.write.orders.models import Order
from tests.factories import UserFactory, add_author, stocked_book
from tests.storefront.test_pages import APPROVE, logged_in, project_all

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "read"])


def test_a_form_wide_error_is_shown_once():
    UserFactory(username="reader", password="the-right-pass-phrase")
    page = Client().post("/log-in/", {"username": "reader", "password": "wrong"})
    assert page.status_code == 200
    assert page.content.decode().count("Please enter a correct username and password") == 1


def test_a_guest_goes_from_checkout_to_sign_up_and_back_with_the_cart_kept():
    book = stocked_book(title="The Dispossessed", on_hand=5)
    project_all()
    guest = Client()
    guest.post("/cart/add/", {"book_id": book.pk, "quantity": 2})

    to_log_in = guest.get("/checkout/")
    assert to_log_in["Location"] == "/log-in/?next=/checkout/"
    page = guest.get(to_log_in["Location"]).content.decode()
    assert "Log in to check out: your cart stays as it is." in page
    assert 'href="/sign-up/?next=%2Fcheckout%2F"' in page

    signed_up = guest.post(
        "/sign-up/?next=%2Fcheckout%2F",
        {"username": "newreader", "email": "new@example.com", "password": "a-long-pass-phrase",
         "full_name": "New Reader", "shipping_address": "1 Elm Street", "next": "/checkout/"},
    )  # fmt: skip
    assert signed_up.status_code == 302
    assert signed_up["Location"] == "/checkout/"
    checkout = guest.get("/checkout/").content.decode()
    assert "2 × The Dispossessed" in checkout


def test_sign_up_never_sends_anyone_to_another_site():
    response = Client().post(
        "/sign-up/",
        {"username": "elsewhere", "email": "e@example.com", "password": "a-long-pass-phrase",
         "full_name": "E", "next": "https://evil.example/"},
    )  # fmt: skip
    assert response["Location"] == "/"


def test_the_cart_counts_removes_and_keeps_to_the_stock():
    scarce = stocked_book(title="Three Left", on_hand=3)
    plenty = stocked_book(title="Plenty", on_hand=50)
    project_all()
    client = Client()

    client.post("/cart/add/", {"book_id": scarce.pk, "quantity": 50})
    page = client.get("/cart/").content.decode()
    assert "Only 3 left: your cart holds 3." in page
    again = client.post("/cart/add/", {"book_id": scarce.pk, "quantity": 1}, follow=True)
    assert "Only 3 left, and your cart holds them all." in again.content.decode()
    client.post("/cart/", {"book_id": scarce.pk, "quantity": 10})
    assert client.session["cart"] == {str(scarce.pk): 3}

    client.post("/cart/add/", {"book_id": plenty.pk, "quantity": 2})
    assert "Cart (5" in client.get("/books/").content.decode()
    assert 'aria-label="Remove Three Left from the cart"' in client.get("/cart/").content.decode()
    client.post("/cart/", {"book_id": scarce.pk, "quantity": 0})
    assert client.session["cart"] == {str(plenty.pk): 2}
    assert "Cart (2" in client.get("/").content.decode()


def test_the_confirmation_thanks_the_customer_and_totals_in_the_right_column():
    book = stocked_book(title="Kindred", on_hand=5, price="12.50")
    project_all()
    customer = UserFactory()
    client = logged_in(customer)
    client.post("/cart/add/", {"book_id": book.pk, "quantity": 2})
    placed = client.post("/checkout/", {"shipping_address": "1 Elm St", "card_number": APPROVE})
    project_all()
    page = client.get(placed["Location"]).content.decode()
    order = Order.objects.get(customer=customer)
    assert f"Thank you! Order #{order.pk} is placed" in page
    assert "<th>Subtotal</th>" in page
    assert "<td>2</td><td>$25.00</td>" in page
    assert '<th colspan="3">Total</th><th>$25.00</th>' in page


def test_lists_sort_by_price_and_newest_and_authors_have_pages():
    calvino = add_author(name="Italo Calvino")
    cheap = stocked_book(title="Zebra", price="5.00", authors=[calvino],
                         published_on=datetime.date(1990, 1, 1))  # fmt: skip
    dear = stocked_book(title="Aardvark", price="50.00", published_on=datetime.date(2020, 1, 1))
    project_all()
    client = Client()

    by_title = client.get("/books/").content.decode()
    assert by_title.index("Aardvark") < by_title.index("Zebra")
    by_price = client.get("/books/", {"sort": "price"}).content.decode()
    assert by_price.index("Zebra") < by_price.index("Aardvark")
    assert "2 books found." in by_price
    newest = client.get("/books/", {"sort": "newest"}).content.decode()
    assert newest.index("Aardvark") < newest.index("Zebra")
    assert client.get("/books/", {"sort": "nonsense"}).status_code == 200

    card = client.get(f"/books/{cheap.pk}/").content.decode()
    assert f'<a href="/authors/{calvino.pk}/">Italo Calvino</a>' in card
    author_page = client.get(f"/authors/{calvino.pk}/").content.decode()
    assert "Books by Italo Calvino" in author_page
    assert "Zebra" in author_page
    assert "Aardvark" not in author_page
    assert client.get("/authors/987654/").status_code == 404
    assert f"/books/{dear.pk}/" in by_title
