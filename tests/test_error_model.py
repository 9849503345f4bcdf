"""One error model (apps/cqrs/errors.py): every kind of refusal, through each of its three
mappings (API, pages, admin), and database constraints speaking the services' words."""

from decimal import Decimal

import pytest
from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.messages.storage.fallback import FallbackStorage
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.http import Http404
from django.test import RequestFactory

from apps.cqrs.admin import run_command
from apps.cqrs.api import exception_handler
from apps.cqrs.errors import Unavailable, refusal
from apps.cqrs.exceptions import Conflict
from apps.storefront.views import _run
from apps.write.catalog.models import Book
from apps.write.orders.payments import CardDeclined
from tests.factories import add_book

KINDS = {
    "validation": (ValidationError({"title": "A book needs a title."}), 400),
    "payment declined": (CardDeclined("The card was declined."), 402),
    "not found": (ObjectDoesNotExist("No such order."), 404),
    "forbidden": (PermissionDenied("system:timer may not orders.ship"), 403),
    "conflict": (Conflict("Cannot ship order 4: it is placed."), 409),
    "unavailable": (Unavailable("The payment gateway does not answer."), 503),
}


class TitleForm(forms.Form):
    title = forms.CharField(required=False)


@pytest.mark.parametrize("kind", KINDS)
def test_the_api_answers_each_kind_with_its_status_and_messages(kind):
    exc, status = KINDS[kind]
    response = exception_handler(exc, {})
    assert response.status_code == status
    if kind == "validation":
        assert response.data == {"title": ["A book needs a title."]}
    elif kind == "payment declined":
        assert response.data == {"card_number": ["The card was declined. Nothing was charged."]}
    else:
        assert response.data == {"detail": str(exc)}


@pytest.mark.parametrize("kind", KINDS)
def test_a_page_shows_each_kind_on_its_form_or_as_its_error_page(kind):
    exc, _ = KINDS[kind]
    form = TitleForm({"title": ""})
    assert form.is_valid()

    def refuse():
        raise exc

    if kind == "not found":
        with pytest.raises(Http404):
            _run(form, refuse)
        return
    if kind == "forbidden":
        with pytest.raises(PermissionDenied):
            _run(form, refuse)
        return
    assert _run(form, refuse) is None
    if kind == "validation":
        assert form.errors == {"title": ["A book needs a title."]}
    else:
        assert form.non_field_errors() == [refusal(exc).message]


@pytest.mark.parametrize("kind", KINDS)
def test_the_admin_shows_each_kind_as_an_error_message(kind):
    exc, _ = KINDS[kind]
    request = RequestFactory().post("/admin/")
    request.session = {}
    request._messages = FallbackStorage(request)
    model_admin = admin.site._registry[Book]

    def refuse():
        raise exc

    assert run_command(model_admin, request, "Shipped", refuse) is False
    [message] = list(request._messages)
    assert message.message == f"Shipped: {refusal(exc).message}"
    assert message.level_tag == "error"


def test_an_error_that_is_no_refusal_stays_a_bug():
    with pytest.raises(ZeroDivisionError):
        _run(TitleForm({}), lambda: 1 / 0)
    assert refusal(ZeroDivisionError()) is None


@pytest.mark.django_db
def test_a_database_constraint_speaks_the_services_words():
    book = add_book(price="10.00")
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        Book.objects.filter(pk=book.pk).update(price=Decimal("-1"))
    refused = refusal(caught.value)
    assert (refused.kind, refused.status) == ("validation", 400)
    assert refused.message == "A price cannot be negative."
    assert "book_price_not_negative" not in refused.message


@pytest.mark.django_db
def test_a_negative_price_in_the_admin_shows_the_services_message(client):
    staff = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")
    client.force_login(staff)
    book = add_book(price="10.00")
    response = client.post(
        f"/admin/catalog/book/{book.pk}/change/",
        {
            "title": book.title,
            "subtitle": "",
            "description": "",
            "format": book.format,
            "language": book.language,
            "published_on": "",
            "price": "-5.00",
        },
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "A price cannot be negative." in page
    assert "book_price_not_negative" not in page
    book.refresh_from_db()
    assert book.price == Decimal("10.00")
