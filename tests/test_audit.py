import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.read.catalog.models import BookListing
from apps.read.orders.models import OrderSummary
from apps.write.orders import services
from tests.factories import APPROVE, UserFactory, place_order, stocked_book

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "read"])


def run_audit(*args) -> tuple[int, str]:
    from io import StringIO

    out = StringIO()
    try:
        call_command("audit_read_models", *args, stdout=out)
    except CommandError as exc:
        return exc.returncode, out.getvalue() + str(exc)
    return 0, out.getvalue()


def test_the_audit_finds_planted_differences_and_repairs_them():
    customer = UserFactory()
    book = stocked_book(on_hand=8, price="10.00")
    other = stocked_book(on_hand=3)
    order = place_order(customer, (book, 2))
    services.order_pay(actor=customer, order_id=order.pk, card_number=APPROVE)
    assert run_audit() == (0, "The read models agree with the write model.\n")

    # Plant differences straight into the read tables
    BookListing.objects.filter(book_id=book.pk).update(price="99.99", quantity_available=1)
    BookListing.objects.filter(book_id=other.pk).delete()
    OrderSummary.objects.filter(order_id=order.pk).update(status="delivered")

    code, out = run_audit()
    assert code == 1
    assert f"book listing {book.pk}: price is Decimal('99.99'), should be Decimal('10.00')" in out
    assert f"book listing {book.pk}: quantity_available is 1, should be 6" in out
    assert f"book listing {other.pk}: row is 'missing', should be 'present'" in out
    assert f"order summary {order.pk}: status is 'delivered', should be 'paid'" in out
    assert "4 difference(s) found" in out

    code, out = run_audit("--repair")
    assert code == 0, out
    assert "Repaired 4 difference(s)." in out
    assert run_audit()[0] == 0
    assert BookListing.objects.get(book_id=book.pk).availability == "in_stock"
