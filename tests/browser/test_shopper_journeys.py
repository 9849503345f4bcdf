"""The shopper's journeys issue 18 added, in a real browser against a live server and a real
worker: a misspelt search, sorting, covers, author pages, and a guest's way to the checkout."""

import pytest
from playwright.sync_api import expect

from apps.write.catalog import covers
from apps.write.catalog import services as catalog
from tests.conftest import wait_until_caught_up
from tests.factories import add_author, stocked_book

pytestmark = [
    pytest.mark.browser,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True, databases=["default", "read"]),
]


def with_cover(book, author: str):
    image = covers.generated_cover(title=book.title, author=author, seed=book.pk)
    catalog.book_change_cover(actor=None, book_id=book.pk, cover=covers.store_cover(image))
    return book


@pytest.fixture
def shelf(settings, tmp_path, celery_worker):
    settings.MEDIA_ROOT = tmp_path
    sutcliff = add_author(name="Rosemary Sutcliff")
    books = {
        "bearer": stocked_book(title="The Lantern Bearer", price="15.00", authors=[sutcliff]),
        "lanterns": stocked_book(title="Lanterns of the North", price="9.00"),
        "eagle": stocked_book(title="The Eagle of the Ninth", price="12.00", authors=[sutcliff]),
    }
    with_cover(books["bearer"], "Rosemary Sutcliff")
    with_cover(books["eagle"], "Rosemary Sutcliff")
    # Pages read the read model: wait for the worker to project the covers too, not only the
    # books (a search can find a book whose cover event is still on its way)
    wait_until_caught_up()
    return books


def titles(page) -> list[str]:
    return page.locator("ul.books li strong").all_inner_texts()


def test_a_misspelt_search_finds_the_book_and_sorts_by_price(
    live_server, celery_worker, page, shoot, shelf
):
    base = live_server.url
    page.goto(base + "/")
    page.fill("input[name=q]", "lanturn")
    page.click("form[role=search] button")
    expect(page.locator("h1")).to_have_text("Books matching “lanturn”")
    expect(page.locator("main [role=status]")).to_have_text(
        "No book matches “lanturn”; showing books matching “lantern”. 2 books found."
    )
    cover = page.get_by_alt_text("Cover of The Lantern Bearer")
    expect(cover).to_be_visible()
    assert cover.evaluate("img => img.complete && img.naturalWidth") == 160  # it loaded
    shoot("typo-search")

    page.select_option("select[name=sort]", "price")
    page.click("form.filters button")
    assert titles(page) == ["Lanterns of the North", "The Lantern Bearer"]
    page.select_option("select[name=sort]", "-price")
    page.click("form.filters button")
    assert titles(page) == ["The Lantern Bearer", "Lanterns of the North"]
    shoot("sorted-by-price")

    page.get_by_role("link", name="The Lantern Bearer").click()
    expect(page.get_by_alt_text("Cover of The Lantern Bearer")).to_be_visible()
    shoot("book-with-cover")
    page.get_by_role("link", name="Rosemary Sutcliff").click()
    expect(page.locator("h1")).to_contain_text("Rosemary Sutcliff")
    assert sorted(titles(page)) == ["The Eagle of the Ninth", "The Lantern Bearer"]
    shoot("author-page")


def test_a_guest_signs_up_at_the_checkout_and_keeps_the_cart(
    live_server, celery_worker, page, shoot, shelf
):
    base = live_server.url
    book = shelf["eagle"]
    page.goto(f"{base}/books/{book.pk}/")
    page.fill("input[name=quantity]", "2")
    page.click("text=Add to cart")
    expect(page.locator("nav")).to_contain_text("Cart (2 items)")
    page.click("text=Check out")

    expect(page.locator("main")).to_contain_text("Log in to check out: your cart stays as it is.")
    shoot("log-in-to-check-out")
    page.get_by_role("link", name="Create an account").click()
    page.fill("input[name=username]", "newreader")
    page.fill("input[name=email]", "new@example.com")
    page.fill("input[name=full_name]", "New Reader")
    page.fill("input[name=password]", "a-long-pass-phrase")
    page.fill("textarea[name=shipping_address]", "1 Elm Street")
    shoot("sign-up")
    page.click("main button[type=submit]")

    expect(page.locator("h1")).to_have_text("Checkout")
    expect(page.locator("main")).to_contain_text("The Eagle of the Ninth")
    expect(page.locator("nav")).to_contain_text("Cart (2 items)")
    shoot("back-at-checkout")
