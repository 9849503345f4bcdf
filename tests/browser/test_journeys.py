"""Customer and staff journeys in a real browser, against a live server with a real worker."""

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from apps.write.orders.models import Order
from tests.factories import UserFactory, add_author, place_order, stocked_book

pytestmark = [
    pytest.mark.browser,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True, databases=["default", "read"]),
]
PASSWORD = "correct horse battery"


def log_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/log-in/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")


def fill_cart_and_check_out(page, base, shoot, *, title: str, card: str) -> None:
    page.goto(base + "/")
    shoot("home")
    page.fill("input[name=q]", title.split()[0])
    page.click("form[role=search] button")
    expect(page.get_by_role("link", name=title)).to_be_visible(timeout=10_000)
    shoot("search")
    page.get_by_role("link", name=title).click()
    shoot("book")
    page.click("text=Add to cart")
    expect(page.locator("h1")).to_have_text("Your cart")
    shoot("cart")
    page.click("text=Check out")
    page.fill("textarea[name=shipping_address]", "1 Elm Street, Springfield")
    page.fill("input[name=card_number]", card)
    shoot("checkout")
    page.click("text=Place order and pay")


def test_a_customer_finds_a_book_checks_out_and_follows_the_order(
    live_server, celery_worker, page, shoot
):
    customer = UserFactory(username="reader")
    stocked_book(title="Invisible Cities", authors=[add_author(name="Italo Calvino")], on_hand=5)
    base = live_server.url
    log_in(page, base, "reader")

    fill_cart_and_check_out(page, base, shoot, title="Invisible Cities", card="4242 4242 4242 4242")

    # The confirmation may first say "being processed"; it refreshes itself into the order
    order = Order.objects.get(customer=customer)
    expect(page.locator("h1")).to_have_text(f"Order #{order.pk}: Paid", timeout=15_000)
    shoot("confirmation")
    page.click("text=My orders")
    expect(page.get_by_role("link", name=f"#{order.pk}")).to_be_visible()
    shoot("my-orders")


def test_a_declined_card_shows_a_clear_error_and_leaves_no_order(
    live_server, celery_worker, page, shoot
):
    customer = UserFactory(username="unlucky")
    stocked_book(title="Kindred Spirits", on_hand=5)
    base = live_server.url
    log_in(page, base, "unlucky")

    fill_cart_and_check_out(page, base, shoot, title="Kindred Spirits", card="4000 0000 0000 0002")

    expect(page.locator("main")).to_contain_text("The card was declined.")
    shoot("declined")
    assert not Order.objects.filter(customer=customer).exists()
    page.click("text=My orders")
    expect(page.locator("main")).to_contain_text("You have no orders yet")
    shoot("declined-my-orders")


def test_staff_change_a_price_in_the_admin_and_the_book_page_shows_it(
    live_server, celery_worker, page, shoot
):
    get_user_model().objects.create_superuser("boss", "boss@example.com", PASSWORD)
    book = stocked_book(title="Dune Messiah", price="12.00")
    base = live_server.url
    page.goto(f"{base}/admin/login/")
    page.fill("input[name=username]", "boss")
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit]")
    page.goto(f"{base}/admin/catalog/book/{book.pk}/change/")
    page.fill("input[name=price]", "9.95")
    shoot("admin-edit")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")

    # The worker projects the change; the page shows it within a few refreshes
    for _ in range(30):
        page.goto(f"{base}/books/{book.pk}/")
        if "$9.95" in page.content():
            break
        page.wait_for_timeout(300)
    expect(page.locator(".price")).to_have_text("$9.95")
    shoot("book-page")


def test_another_customers_order_is_not_found(live_server, page, shoot):
    owner = UserFactory()

    order = place_order(owner, (stocked_book(), 1))
    UserFactory(username="nosy")
    log_in(page, live_server.url, "nosy")

    response = page.goto(f"{live_server.url}/orders/{order.pk}/")

    assert response.status == 404
    expect(page.locator("h1")).to_have_text("Not found")
    shoot("not-found")
