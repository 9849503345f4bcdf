"""Test data. Users come from factory_boy; the catalog is built through the command services,
because a row written any other way would have no events behind it."""

import itertools
import threading
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from apps.cqrs.actors import SystemActor
from apps.write.catalog import services
from apps.write.catalog.validators import isbn13_check_digit
from apps.write.inventory import services as inventory
from apps.write.orders import services as orders


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"customer{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("correct horse battery")


class StaffFactory(UserFactory):
    username = factory.Sequence(lambda n: f"staff{n}")
    is_staff = True


# Sends orders on their way in tests, as the warehouse's staff would.
WAREHOUSE = SystemActor("test-warehouse", frozenset({"orders.ship", "orders.deliver"}))

_isbn_numbers = itertools.count(1)
_isbn_lock = threading.Lock()


def new_isbn() -> str:
    with _isbn_lock:
        first12 = f"978{next(_isbn_numbers):09d}"
    return first12 + isbn13_check_digit(first12)


def add_author(*, name: str = "Octavia Butler", actor=None):
    return services.author_add(actor=actor, name=name)


def add_book(*, title: str = "Kindred", price: str = "12.50", authors=None, actor=None, **extra):
    author_ids = [a.pk for a in authors] if authors else [add_author(actor=actor).pk]
    return services.book_add(
        actor=actor,
        title=title,
        isbn=extra.pop("isbn", None) or new_isbn(),
        author_ids=author_ids,
        price=Decimal(price),
        **extra,
    )


def stocked_book(*, on_hand: int = 10, allow_backorder: bool = False, price: str = "10.00", **kw):

    book = add_book(price=price, **kw)
    if on_hand:
        inventory.stock_receive(actor=None, book_id=book.pk, quantity=on_hand)
    if allow_backorder:
        inventory.stock_set_backorders(actor=None, book_id=book.pk, allowed=True)
    return book


def place_order(customer, *books_and_quantities, address: str = "1 Main St, Springfield"):

    return orders.order_place(
        actor=customer,
        lines=[{"book_id": b.pk, "quantity": q} for b, q in books_and_quantities],
        shipping_address=address,
    )


APPROVE = "4242 4242 4242 4242"
DECLINE = "4000 0000 0000 0002"
