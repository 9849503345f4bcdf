"""The cart lives in the session: {book_id: quantity}. Prices shown come from the read model;
the price charged is taken from the catalog by the order_place command."""

from decimal import Decimal
from typing import Any

from django.http import HttpRequest

from apps.read.catalog import selectors

SESSION_KEY = "cart"
MAX_QUANTITY = 100


def items(session) -> dict[int, int]:
    return {int(book_id): qty for book_id, qty in session.get(SESSION_KEY, {}).items()}


def save(session, cart: dict[int, int]) -> None:
    session[SESSION_KEY] = {str(book_id): qty for book_id, qty in cart.items() if qty > 0}


def add(session, *, book_id: int, quantity: int) -> None:
    cart = items(session)
    cart[book_id] = min(cart.get(book_id, 0) + quantity, MAX_QUANTITY)
    save(session, cart)


def set_quantity(session, *, book_id: int, quantity: int) -> None:
    cart = items(session)
    if quantity <= 0:
        cart.pop(book_id, None)
    else:
        cart[book_id] = min(quantity, MAX_QUANTITY)
    save(session, cart)


def count(request: HttpRequest) -> dict[str, int]:
    """Template context: how many books the cart holds, for the navigation."""
    return {"cart_count": sum(items(request.session).values())}


def clear(session) -> None:
    session.pop(SESSION_KEY, None)


def lines(session) -> tuple[list[dict], object]:
    """The cart's lines with the books as the read model shows them, and the total."""
    cart = items(session)
    books = selectors.book_listings().in_bulk(list(cart))
    rows: list[dict[str, Any]] = [
        {"book": books[book_id], "quantity": qty, "subtotal": books[book_id].price * qty}
        for book_id, qty in cart.items()
        if book_id in books
    ]
    return rows, sum((row["subtotal"] for row in rows), Decimal(0))
