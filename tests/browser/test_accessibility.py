"""axe-core (4.12, bundled with axe-playwright-python) on every storefront page, as a guest and
as a signed-in customer: no violation of any rule axe runs by default (WCAG 2.x A and AA, and
its best practices). The figures go to test-artifacts/accessibility.json."""

import json
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe

from apps.write.catalog import covers
from apps.write.catalog import services as catalog
from tests.factories import APPROVE, UserFactory, add_author, place_order, stocked_book
from tests.storefront.test_pages import project_all

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, databases=["default", "read"]),
]
ARTIFACT = Path(__file__).resolve().parents[2] / "test-artifacts" / "accessibility.json"
PASSWORD = "correct horse battery"


def test_every_storefront_page_passes_axe(live_server, page, settings, tmp_path):
    from apps.write.orders import services as orders

    settings.MEDIA_ROOT = tmp_path
    author = add_author(name="Rosemary Sutcliff")
    book = stocked_book(title="The Lantern Bearer", authors=[author], on_hand=3)
    stocked_book(title="Lanterns of the North", on_hand=0)
    image = covers.generated_cover(title=book.title, author=author.name, seed=1)
    catalog.book_change_cover(actor=None, book_id=book.pk, cover=covers.store_cover(image))
    customer = UserFactory(username="reader")
    order = place_order(customer, (book, 1))
    orders.order_pay(actor=customer, order_id=order.pk, card_number=APPROVE)
    project_all()

    base = live_server.url
    guest_pages = [
        "/", "/books/", "/books/?q=lanturn", "/books/?sort=-price&availability=in_stock",
        f"/books/{book.pk}/", f"/authors/{author.pk}/", "/cart/", "/log-in/",
        "/log-in/?next=/checkout/", "/sign-up/", "/password-reset/", "/no-such-page/",
    ]  # fmt: skip
    customer_pages = ["/cart/", "/checkout/", "/profile/", "/orders/", f"/orders/{order.pk}/"]
    axe, found = Axe(), {}

    def check(path: str, who: str, *, go: bool = True) -> None:
        if go:
            page.goto(base + path)
        violations = axe.run(page).response["violations"]
        found[f"{who} {path}"] = [
            {"rule": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]]}
            for v in violations
        ]

    for path in guest_pages:
        check(path, "guest")
    page.goto(f"{base}/books/{book.pk}/")
    page.click("text=Add to cart")
    check("/cart/, just added, with its message", "guest", go=False)
    page.goto(f"{base}/log-in/")
    page.fill("input[name=username]", "reader")
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    for path in customer_pages:
        check(path, "customer")
    page.goto(f"{base}/profile/")
    page.fill("input[name=old_password]", "wrong")
    page.click("text=Change password")
    check("/profile/password/, a form with errors", "customer", go=False)

    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(json.dumps({"pages": len(found), "violations": found}, indent=1))
    print(f"\naccessibility: pages={len(found)}, violations={sum(map(len, found.values()))}")
    assert {name: v for name, v in found.items() if v} == {}
