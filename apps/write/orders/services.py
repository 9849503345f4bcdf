"""Order commands. Lock order: order rows (by id), then stock rows (by book id); the events are
appended last, by the outermost command as it finishes."""

from collections import Counter
from decimal import Decimal
from typing import TypedDict

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db.models import F

from apps.contracts.orders import (
    BackorderFilled,
    OrderCancelled,
    OrderDelivered,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
    PaymentDeclined,
    PlacedLine,
    ReleasedUnits,
    SoldLine,
)
from apps.cqrs.commands import command
from apps.cqrs.exceptions import Conflict
from apps.cqrs.log import record
from apps.write.catalog.models import Book
from apps.write.customers.models import Customer
from apps.write.inventory import services as inventory
from apps.write.orders.models import Order, OrderLine, Payment
from apps.write.orders.payments import CardDeclined, clean_card_number, gateway
from apps.write.orders.state import ensure_allowed

MAX_LINES = 50
MAX_QUANTITY = 100


class LineInput(TypedDict):
    book_id: int
    quantity: int


def _is_staff(actor: AbstractBaseUser | None) -> bool:
    # None is the system itself: a process manager acting on an event.
    return actor is None or bool(getattr(actor, "is_staff", False))


def _locked_order(actor: AbstractBaseUser | None, order_id: int) -> Order:
    """The order, locked; a customer asking for someone else's order gets DoesNotExist (404),
    so that order ids reveal nothing."""
    orders = Order.objects.select_for_update(no_key=True)
    if not _is_staff(actor):
        orders = orders.filter(customer=actor)
    return orders.get(pk=order_id)


def _event_fields(order: Order) -> dict:
    return {"order_id": order.pk, "customer_id": order.customer_id}


def _validated_lines(lines: list[LineInput]) -> tuple[Counter[int], dict[int, Book]]:
    """Quantities wanted per book, and the books, or a ValidationError naming what is wrong."""
    if not lines:
        raise ValidationError({"lines": "An order needs at least one line."})
    if len(lines) > MAX_LINES:
        raise ValidationError({"lines": f"An order has at most {MAX_LINES} lines."})
    wanted: Counter[int] = Counter()
    for line in lines:
        quantity = line["quantity"]
        if isinstance(quantity, bool) or not isinstance(quantity, int):
            raise ValidationError({"lines": "Quantities are whole numbers."})
        if not 1 <= quantity <= MAX_QUANTITY:
            raise ValidationError({"lines": f"Order from 1 to {MAX_QUANTITY} of a book."})
        wanted[line["book_id"]] += quantity
    if any(q > MAX_QUANTITY for q in wanted.values()):
        raise ValidationError({"lines": f"Order from 1 to {MAX_QUANTITY} of a book."})
    books = Book.objects.in_bulk(list(wanted))
    unknown = sorted(set(wanted) - set(books))
    if unknown:
        raise ValidationError({"lines": f"Unknown book id(s): {', '.join(map(str, unknown))}."})
    gone = [b.title for b in books.values() if b.discontinued]
    if gone:
        raise ValidationError({"lines": f"No longer sold: {', '.join(gone)}."})
    return wanted, books


def _shipping_address(actor: AbstractBaseUser, given: str) -> str:
    """The address given, or else the one on the customer's profile."""
    if not given.strip():
        customer = Customer.objects.filter(user=actor).first()
        given = customer.shipping_address if customer else ""
    if not given.strip():
        raise ValidationError({"shipping_address": "Where should we send the books?"})
    return given.strip()


@command("orders.place")
def order_place(
    *, actor: AbstractBaseUser, lines: list[LineInput], shipping_address: str = ""
) -> Order:
    """Place an order for `actor`: prices come from the catalog, never from the client, and
    stock is reserved in the same transaction (or backordered where the book allows it)."""
    wanted, books = _validated_lines(lines)
    order = Order.objects.create(
        customer=actor,
        total=sum((books[b].price * q for b, q in wanted.items()), Decimal("0")),
        shipping_address=_shipping_address(actor, shipping_address),
    )
    stock = inventory.stock_lock(wanted)
    order_lines = []
    for book_id in sorted(wanted):
        quantity, item, book = wanted[book_id], stock[book_id], books[book_id]
        reserve = min(quantity, item.on_hand)
        if reserve < quantity and not item.allow_backorder:
            raise Conflict(
                f"Only {item.on_hand} of “{book.title}” in stock; you asked for {quantity}."
            )
        if reserve:
            inventory.stock_reserve(
                actor=actor, book_id=book_id, quantity=reserve, order_id=order.pk
            )
        order_lines.append(
            OrderLine(
                order=order,
                book=book,
                title=book.title,
                unit_price=book.price,
                quantity=quantity,
                backordered=quantity - reserve,
            )
        )
    OrderLine.objects.bulk_create(order_lines)
    record(
        OrderPlaced(
            **_event_fields(order),
            lines=[
                PlacedLine(
                    line_id=line.pk,
                    book_id=line.book_id,
                    title=line.title,
                    unit_price=line.unit_price,
                    quantity=line.quantity,
                    backordered=line.backordered,
                )
                for line in order_lines
            ],
            total=order.total,
            shipping_address=order.shipping_address,
        )
    )
    return order


@command("orders.pay")
def order_pay(*, actor: AbstractBaseUser, order_id: int, card_number: str) -> Payment:
    """Charge the order's total. A declined card is recorded (PaymentDeclined) rather than
    raised: the decline is a fact, and a process manager cancels the order because of it."""
    card_number = clean_card_number(card_number)
    order = _locked_order(actor, order_id)
    ensure_allowed(order, "pay")
    if order.payments.filter(status=Payment.Status.DECLINED).exists():
        raise Conflict(f"Order {order.pk}'s payment was declined; the order is being cancelled.")
    result = gateway().charge(
        amount=order.total, card_number=card_number, reference=f"order-{order.pk}"
    )
    payment = Payment.objects.create(
        order=order,
        amount=order.total,
        status=Payment.Status.APPROVED if result.approved else Payment.Status.DECLINED,
        reference=result.reference,
        card_last4=card_number[-4:],
        decline_reason=result.decline_reason,
    )
    if result.approved:
        _mark_paid(order, payment)
    else:
        record(
            PaymentDeclined(
                **_event_fields(order),
                amount=payment.amount,
                payment_id=payment.pk,
                card_last4=payment.card_last4,
                reason=payment.decline_reason,
            )
        )
    return payment


def order_checkout(
    *, actor: AbstractBaseUser, lines: list[LineInput], shipping_address: str = "", card_number: str
) -> Order:
    """Place and pay in one step, as the storefront's checkout does. The card is authorized
    first, outside any transaction, so a declined card leaves no order behind and no lock is
    held while the gateway answers; then the order is placed and the authorization captured
    in one transaction. If placing fails (stock ran out, a price changed), the hold is voided."""
    card_number = clean_card_number(card_number)
    wanted, books = _validated_lines(lines)
    shipping_address = _shipping_address(actor, shipping_address)
    amount = sum((books[b].price * q for b, q in wanted.items()), Decimal("0"))
    authorization = gateway().authorize(
        amount=amount, card_number=card_number, reference=f"checkout-{actor.pk}"
    )
    if not authorization.approved:
        raise CardDeclined(authorization.decline_reason)
    try:
        return _place_and_capture(
            actor=actor,
            lines=lines,
            shipping_address=shipping_address,
            amount=amount,
            authorization=authorization.reference,
            card_last4=card_number[-4:],
        )
    except BaseException:
        gateway().void(authorization=authorization.reference)
        raise


@command("orders.checkout")
def _place_and_capture(
    *,
    actor: AbstractBaseUser,
    lines: list[LineInput],
    shipping_address: str,
    amount: Decimal,
    authorization: str,
    card_last4: str,
) -> Order:
    order = order_place(actor=actor, lines=lines, shipping_address=shipping_address)
    if order.total != amount:
        raise Conflict("A price changed while you were checking out. Please review your cart.")
    payment = Payment.objects.create(
        order=order,
        amount=amount,
        status=Payment.Status.APPROVED,
        reference=gateway().capture(amount=amount, authorization=authorization),
        card_last4=card_last4,
    )
    _mark_paid(order, payment)
    return order


def _mark_paid(order: Order, payment: Payment) -> None:
    order.status = Order.Status.PAID
    order.save(update_fields=["status", "updated_at"])
    record(
        OrderPaid(
            **_event_fields(order),
            amount=payment.amount,
            payment_id=payment.pk,
            payment_reference=payment.reference,
            card_last4=payment.card_last4,
        )
    )


@command("orders.cancel")
def order_cancel(*, actor: AbstractBaseUser | None, order_id: int, reason: str = "") -> Order:
    """Cancel: put reserved units back on the shelf and refund what was paid."""
    by_staff = _is_staff(actor)
    order = _locked_order(actor, order_id)
    ensure_allowed(order, "cancel_by_staff" if by_staff else "cancel_by_customer")
    lines = list(order.lines.all())
    released = {line.book_id: line.reserved for line in lines if line.reserved}
    inventory.stock_lock(released)
    for book_id, quantity in released.items():
        inventory.stock_release(actor=actor, book_id=book_id, quantity=quantity, order_id=order.pk)
    refunded = Decimal("0")
    for payment in order.payments.select_for_update(no_key=True).filter(
        status=Payment.Status.APPROVED
    ):
        gateway().refund(amount=payment.amount, payment_reference=payment.reference)
        payment.status = Payment.Status.REFUNDED
        payment.save(update_fields=["status", "updated_at"])
        refunded += payment.amount
    OrderLine.objects.filter(order=order).update(backordered=0)
    order.status = Order.Status.CANCELLED
    order.cancel_reason = reason[:200]
    order.save(update_fields=["status", "cancel_reason", "updated_at"])
    record(
        OrderCancelled(
            **_event_fields(order),
            reason=order.cancel_reason,
            by_staff=by_staff,
            refunded=refunded,
            released=[ReleasedUnits(book_id=b, quantity=q) for b, q in released.items()],
            lines=[
                SoldLine(book_id=line.book_id, title=line.title, quantity=line.quantity)
                for line in lines
            ],
            placed_at=order.placed_at,
        )
    )
    return order


@command("orders.ship")
def order_ship(*, actor: AbstractBaseUser | None, order_id: int) -> Order:
    order = _locked_order(actor, order_id)
    ensure_allowed(order, "ship")
    if order.lines.filter(backordered__gt=0).exists():
        raise Conflict(f"Order {order.pk} still waits for backordered books.")
    order.status = Order.Status.SHIPPED
    order.save(update_fields=["status", "updated_at"])
    record(OrderShipped(**_event_fields(order)))
    return order


@command("orders.deliver")
def order_deliver(*, actor: AbstractBaseUser | None, order_id: int) -> Order:
    order = _locked_order(actor, order_id)
    ensure_allowed(order, "deliver")
    order.status = Order.Status.DELIVERED
    order.save(update_fields=["status", "updated_at"])
    record(OrderDelivered(**_event_fields(order)))
    return order


def orders_unpaid_since(cutoff) -> list[int]:
    """Ids of orders still waiting for payment since before `cutoff`."""
    return list(
        Order.objects.filter(status=Order.Status.PLACED, placed_at__lt=cutoff)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def books_with_open_backorders(*, book_ids: set[int]) -> set[int]:
    """Those of `book_ids` that some order still waits for."""
    if not book_ids:
        return set()
    return set(
        OrderLine.objects.filter(book_id__in=book_ids, backordered__gt=0)
        .exclude(order__status=Order.Status.CANCELLED)
        .values_list("book_id", flat=True)
    )


@command("orders.fill_backorders")
def backorders_fill(*, actor: AbstractBaseUser | None, book_id: int) -> int:
    """Reserve stock for open backorders of a book, oldest first. Returns units filled.
    Running it again fills nothing more, so it is safe to repeat for the same event."""
    candidates = (
        OrderLine.objects.filter(book_id=book_id, backordered__gt=0)
        .exclude(order__status=Order.Status.CANCELLED)
        .values_list("order_id", flat=True)
    )
    order_ids = sorted(set(candidates))
    if not order_ids:
        return 0
    orders = {
        o.pk: o for o in Order.objects.select_for_update(no_key=True).filter(pk__in=order_ids)
    }
    item = inventory.stock_lock([book_id])[book_id]
    available, filled = item.on_hand, 0
    open_lines = (
        OrderLine.objects.filter(book_id=book_id, backordered__gt=0, order_id__in=order_ids)
        .exclude(order__status=Order.Status.CANCELLED)
        .order_by("pk")
    )
    for line in open_lines:
        if available == 0:
            break
        quantity = min(available, line.backordered)
        inventory.stock_reserve(
            actor=actor, book_id=book_id, quantity=quantity, order_id=line.order_id
        )
        OrderLine.objects.filter(pk=line.pk).update(backordered=F("backordered") - quantity)
        available -= quantity
        filled += quantity
        record(
            BackorderFilled(
                **_event_fields(orders[line.order_id]),
                line_id=line.pk,
                book_id=book_id,
                quantity=quantity,
                still_backordered=line.backordered - quantity,
            )
        )
    return filled
