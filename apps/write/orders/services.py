"""Order commands. Lock order: order rows (by id), then stock rows (by book id); the events are
appended last, by the outermost command as it finishes."""

from collections import Counter
from datetime import timedelta
from decimal import Decimal
from functools import partial
from typing import TypedDict

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.contracts.orders import (
    BackorderFilled,
    OrderCancelled,
    OrderDelivered,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
    PaymentDeclined,
    PaymentRefunded,
    PlacedLine,
    ReleasedUnits,
    SoldLine,
)
from apps.cqrs.actors import SystemActor
from apps.cqrs.bulk import insert_rows
from apps.cqrs.commands import after_commit, command
from apps.cqrs.exceptions import Conflict
from apps.cqrs.log import record
from apps.cqrs.rows import rows_by_pk
from apps.write.catalog.models import Book
from apps.write.customers.models import Customer
from apps.write.inventory import services as inventory
from apps.write.orders.failpoints import failpoint
from apps.write.orders.models import Order, OrderLine, Payment
from apps.write.orders.payments import CardDeclined, ChargeResult, clean_card_number, gateway
from apps.write.orders.state import ensure_allowed

MAX_LINES = 50
MAX_QUANTITY = 100


class LineInput(TypedDict):
    book_id: int
    quantity: int


# A user, or the shop acting by itself under a name (apps/cqrs/actors.py).
Actor = AbstractBaseUser | SystemActor
# The shop's own actors in the order flow, each with the rights its process needs.
PAYMENT_COMPENSATION = SystemActor("payment-compensation", frozenset({"orders.cancel"}))
UNPAID_ORDER_TIMER = SystemActor("unpaid-order-timer", frozenset({"orders.cancel"}))
BACKORDER_FULFILMENT = SystemActor("backorder-fulfilment", frozenset({"orders.fill_backorders"}))
PAYMENT_RECOVERY = SystemActor("payment-recovery", frozenset({"orders.settle_payments"}))


def _is_staff(actor: Actor) -> bool:
    return not isinstance(actor, SystemActor) and bool(getattr(actor, "is_staff", False))


def _locked_order(actor: Actor, order_id: int, *, right: str) -> Order:
    """The order, locked. Staff reach every order, a system actor every order if it has the
    `right`; a customer asking for someone else's order gets DoesNotExist (404), so that order
    ids reveal nothing. There is no default: an actor must be given."""
    if actor is None:
        raise TypeError("Order commands need an actor: a user, or a SystemActor.")
    if isinstance(actor, SystemActor) and not actor.can(right):
        raise PermissionDenied(f"{actor} may not {right}.")
    orders = Order.objects.select_for_update(no_key=True)
    if not (_is_staff(actor) or isinstance(actor, SystemActor)):
        orders = orders.filter(customer_id=actor.pk)
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
    books = rows_by_pk(Book, wanted)
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
        # By primary key with the statement written once (decision 0016): the ORM's
        # filter().first() compiled anew was 40 % of the service's CPU when no address came.
        customer = rows_by_pk(Customer, [actor.pk]).get(actor.pk)
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
    order = Order(
        customer_id=actor.pk,
        total=sum((books[b].price * q for b, q in wanted.items()), Decimal("0")),
        shipping_address=_shipping_address(actor, shipping_address),
    )
    insert_rows([order])
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
    insert_rows(order_lines)
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


def _outside_transactions() -> None:
    """Refuse to run inside a transaction: a durable block cannot be nested in another (the
    test suite's own blocks excepted)."""
    with transaction.atomic(durable=True):
        pass


def order_pay(*, actor: AbstractBaseUser, order_id: int, card_number: str) -> Payment:
    """Charge the order's total, in three steps with the gateway call outside any transaction:
    the payment is recorded as pending with the key the gateway will know the call by, the
    gateway charges (at most once per key), and its answer is recorded. A crash between the
    steps leaves a pending payment that `payments_recover` settles by asking the gateway what it
    did with the key. A declined card is recorded (PaymentDeclined) rather than raised: the
    decline is a fact, and a process manager cancels the order because of it."""
    _outside_transactions()
    card_number = clean_card_number(card_number)
    payment = _charge_start(actor=actor, order_id=order_id, card_last4=card_number[-4:])
    failpoint("pay:before-gateway")
    result = gateway().charge(
        key=payment.key_for("charge"),
        amount=payment.amount,
        card_number=card_number,
        reference=f"order-{order_id}",
    )
    failpoint("pay:after-gateway")
    payment = _charge_settle(actor=actor, payment_id=payment.pk, result=result)
    if payment.status == Payment.Status.REFUND_PENDING:  # it came too late for its order
        refunds_send(payment_ids=[payment.pk])
    return payment


@command("orders.pay")
def _charge_start(*, actor: AbstractBaseUser, order_id: int, card_last4: str) -> Payment:
    order = _locked_order(actor, order_id, right="orders.pay")
    ensure_allowed(order, "pay")
    if order.payments.filter(status=Payment.Status.DECLINED).exists():
        raise Conflict(f"Order {order.pk}'s payment was declined; the order is being cancelled.")
    if order.payments.filter(status=Payment.Status.PENDING).exists():
        raise Conflict(f"A payment for order {order.pk} is under way; look again in a minute.")
    return Payment.objects.create(
        order=order, amount=order.total, status=Payment.Status.PENDING, card_last4=card_last4
    )


def _locked_payment(payment_id: int) -> tuple[Order, Payment]:
    """A payment and its order, locked in the flow's order: the order first."""
    order_id = Payment.objects.values_list("order_id", flat=True).get(pk=payment_id)
    order = Order.objects.select_for_update(no_key=True).get(pk=order_id)
    return order, Payment.objects.select_for_update(no_key=True).get(pk=payment_id)


def _settle(*, actor: Actor, payment_id: int, result: ChargeResult) -> Payment:
    """Record the gateway's answer to a charge or a capture, once. A payment recovery gave up
    on (failed) that the gateway approved after all is refunded, like one approved after its
    order stopped wanting it."""
    order, payment = _locked_payment(payment_id)
    if payment.status not in (
        Payment.Status.PENDING,
        Payment.Status.AUTHORIZED,
        Payment.Status.FAILED,
    ):
        return payment  # settled already
    if payment.status == Payment.Status.FAILED and not result.approved:
        return payment  # given up on, and nothing was taken: nothing to tell
    payment.reference = result.reference
    if not result.approved:
        payment.status = Payment.Status.DECLINED
        payment.decline_reason = result.decline_reason
        payment.save(update_fields=["status", "reference", "decline_reason", "updated_at"])
        record(
            PaymentDeclined(
                **_event_fields(order),
                amount=payment.amount,
                payment_id=payment.pk,
                card_last4=payment.card_last4,
                reason=payment.decline_reason,
            )
        )
    elif payment.status == Payment.Status.FAILED or order.status != Order.Status.PLACED:
        payment.status = Payment.Status.REFUND_PENDING
        payment.decline_reason = "Approved after the order stopped waiting for it; refunded."
        payment.save(update_fields=["status", "reference", "decline_reason", "updated_at"])
    else:
        payment.status = Payment.Status.APPROVED
        payment.save(update_fields=["status", "reference", "updated_at"])
        _mark_paid(order, payment)
    failpoint("settle:before-commit")
    return payment


_charge_settle = command("orders.pay")(_settle)
_capture_settle = command("orders.checkout")(_settle)


def order_checkout(
    *, actor: AbstractBaseUser, lines: list[LineInput], shipping_address: str = "", card_number: str
) -> Order:
    """Place and pay in one step, as the storefront's checkout does. The payment is recorded
    first; the card is authorized outside any transaction, so a declined card leaves no order
    and no lock is held while the gateway answers; then the order is placed with the hold, and
    the hold captured (outside again) and recorded. If placing fails (stock ran out, a price
    changed), the hold is voided. Each gateway call has its key, so `payments_recover` finishes
    whatever a crash interrupts (docs/payments.md)."""
    _outside_transactions()
    card_number = clean_card_number(card_number)
    wanted, books = _validated_lines(lines)
    shipping_address = _shipping_address(actor, shipping_address)
    amount = sum((books[b].price * q for b, q in wanted.items()), Decimal("0"))
    payment = _checkout_start(actor=actor, amount=amount, card_last4=card_number[-4:])
    failpoint("checkout:before-gateway")
    hold = gateway().authorize(
        key=payment.key_for("authorize"),
        amount=amount,
        card_number=card_number,
        reference=f"checkout-{payment.pk}",
    )
    failpoint("checkout:after-authorize")
    if not hold.approved:
        _checkout_declined(actor=actor, payment_id=payment.pk, reason=hold.decline_reason)
        raise CardDeclined(hold.decline_reason)
    try:
        order = _place_with_hold(
            actor=actor,
            payment_id=payment.pk,
            authorization=hold.reference,
            lines=lines,
            shipping_address=shipping_address,
        )
    except BaseException:
        _void(payment_id=payment.pk, authorization=hold.reference)
        raise
    failpoint("checkout:after-place")
    _capture(actor=actor, payment_id=payment.pk)
    order.refresh_from_db()
    return order


@command("orders.checkout")
def _checkout_start(*, actor: AbstractBaseUser, amount: Decimal, card_last4: str) -> Payment:
    return Payment.objects.create(
        amount=amount, status=Payment.Status.PENDING, card_last4=card_last4
    )


@command("orders.checkout")
def _checkout_declined(*, actor: Actor, payment_id: int, reason: str) -> None:
    Payment.objects.filter(pk=payment_id, status=Payment.Status.PENDING).update(
        status=Payment.Status.DECLINED, decline_reason=reason[:200], updated_at=timezone.now()
    )


@command("orders.checkout")
def _place_with_hold(
    *,
    actor: AbstractBaseUser,
    payment_id: int,
    authorization: str,
    lines: list[LineInput],
    shipping_address: str,
) -> Order:
    payment = Payment.objects.select_for_update(no_key=True).get(pk=payment_id)
    if payment.status != Payment.Status.PENDING:
        raise Conflict("This checkout took too long and was given up; nothing was charged.")
    order = order_place(actor=actor, lines=lines, shipping_address=shipping_address)
    if order.total != payment.amount:
        raise Conflict("A price changed while you were checking out. Please review your cart.")
    payment.order = order
    payment.status = Payment.Status.AUTHORIZED
    payment.authorization = authorization
    payment.save(update_fields=["order", "status", "authorization", "updated_at"])
    return order


def _capture(*, actor: Actor, payment_id: int) -> Payment:
    """Take the held amount (outside any transaction) and record it."""
    payment = Payment.objects.get(pk=payment_id)
    reference = gateway().capture(
        key=payment.key_for("capture"), amount=payment.amount, authorization=payment.authorization
    )
    failpoint("checkout:after-capture")
    payment = _capture_settle(
        actor=actor, payment_id=payment_id, result=ChargeResult(True, reference=reference)
    )
    if payment.status == Payment.Status.REFUND_PENDING:
        refunds_send(payment_ids=[payment.pk])
    return payment


def _void(*, payment_id: int, authorization: str) -> None:
    """Let a hold go (outside any transaction) and record it; nothing was charged."""
    payment = Payment.objects.get(pk=payment_id)
    gateway().void(key=payment.key_for("void"), authorization=authorization)
    Payment.objects.filter(
        pk=payment_id, status__in=[Payment.Status.PENDING, Payment.Status.AUTHORIZED]
    ).update(status=Payment.Status.VOIDED, authorization=authorization, updated_at=timezone.now())


def refunds_send(*, payment_ids: list[int]) -> None:
    """Refund the payments among `payment_ids` that wait for it, each by its own key, outside
    any transaction, and record each refund. Runs after the command that asked for it commits
    (`order_cancel` hands it to `after_commit`); `payments_recover` runs it for those a crash
    left."""
    for payment in Payment.objects.filter(
        pk__in=payment_ids, status=Payment.Status.REFUND_PENDING
    ).order_by("pk"):
        failpoint("refund:before-gateway")
        reference = gateway().refund(
            key=payment.key_for("refund"),
            amount=payment.amount,
            payment_reference=payment.reference,
        )
        failpoint("refund:after-gateway")
        _refund_settle(actor=PAYMENT_RECOVERY, payment_id=payment.pk, reference=reference)


@command("orders.refund")
def _refund_settle(*, actor: Actor, payment_id: int, reference: str) -> None:
    order, payment = _locked_payment(payment_id)
    if payment.status != Payment.Status.REFUND_PENDING:
        return
    payment.status = Payment.Status.REFUNDED
    payment.refund_reference = reference
    payment.save(update_fields=["status", "refund_reference", "updated_at"])
    record(
        PaymentRefunded(
            **_event_fields(order),
            amount=payment.amount,
            payment_id=payment.pk,
            refund_reference=reference,
            paid_order=payment.paid_order,
        )
    )
    failpoint("refund:before-commit")


def payments_recover(*, older_than: timedelta | None = None) -> dict[str, int]:
    """Settle the payments a crash left between a gateway call and its record, asking the
    gateway what it did with each key (it answers the same for a repeated key, and moves money
    at most once): charges and holds never received are given up, holds of checkouts that
    placed no order voided, captures and refunds sent again. Only payments untouched for
    `older_than` (PAYMENT_RECOVERY_AFTER_SECONDS) are looked at, so a call still on its way is
    left to its caller; one that answers after all is refunded (`_charge_settle`). Safe to run
    any number of times, from any number of processes. Returns what it did, by kind."""
    _outside_transactions()
    if older_than is None:
        older_than = timedelta(seconds=settings.PAYMENT_RECOVERY_AFTER_SECONDS)
    cutoff = timezone.now() - older_than
    done: Counter[str] = Counter()
    stale = Payment.objects.filter(
        updated_at__lte=cutoff,
        status__in=[
            Payment.Status.PENDING,
            Payment.Status.AUTHORIZED,
            Payment.Status.REFUND_PENDING,
        ],
    ).order_by("pk")
    for payment in stale:
        if payment.status == Payment.Status.REFUND_PENDING:
            refunds_send(payment_ids=[payment.pk])
            done["refunded"] += 1
        elif payment.status == Payment.Status.AUTHORIZED:
            _capture(actor=PAYMENT_RECOVERY, payment_id=payment.pk)
            done["captured"] += 1
        elif payment.order_id is None:  # a checkout that placed no order
            hold = gateway().outcome(key=payment.key_for("authorize"))
            if hold is not None and hold.approved:
                _void(payment_id=payment.pk, authorization=hold.reference)
                done["voided"] += 1
            else:
                _give_up(payment.pk, hold)
                done["given up"] += 1
        else:
            result = gateway().outcome(key=payment.key_for("charge"))
            if result is None:
                _give_up(payment.pk, None)
                done["given up"] += 1
            else:
                settled = _charge_settle(
                    actor=PAYMENT_RECOVERY, payment_id=payment.pk, result=result
                )
                if settled.status == Payment.Status.REFUND_PENDING:
                    refunds_send(payment_ids=[payment.pk])
                done["settled"] += 1
    return dict(done)


def _give_up(payment_id: int, outcome: ChargeResult | None) -> None:
    """The gateway never took this payment's money: it declined, or never got the call."""
    reason = outcome.decline_reason if outcome else "The gateway never received it."
    Payment.objects.filter(pk=payment_id, status=Payment.Status.PENDING).update(
        status=Payment.Status.FAILED, decline_reason=reason[:200], updated_at=timezone.now()
    )


def _mark_paid(order: Order, payment: Payment) -> None:
    order.status = Order.Status.PAID
    order.save(update_fields=["status", "updated_at"])
    Payment.objects.filter(pk=payment.pk).update(paid_order=True)
    payment.paid_order = True
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
def order_cancel(*, actor: Actor, order_id: int, reason: str = "") -> Order:
    """Cancel: put reserved units back on the shelf and refund what was paid."""
    by_staff = _is_staff(actor)
    order = _locked_order(actor, order_id, right="orders.cancel")
    # The shop cancels by itself only what a customer could (placed or paid, not shipped).
    ensure_allowed(order, "cancel_by_staff" if by_staff else "cancel_by_customer")
    lines = list(order.lines.all())
    released = {line.book_id: line.reserved for line in lines if line.reserved}
    inventory.stock_lock(released)
    for book_id, quantity in released.items():
        inventory.stock_release(actor=actor, book_id=book_id, quantity=quantity, order_id=order.pk)
    # The money goes back after the commit, never from inside a transaction that could still
    # roll back (refunds_send); the log says here how much is owed.
    refunds = list(
        order.payments.select_for_update(no_key=True).filter(status=Payment.Status.APPROVED)
    )
    Payment.objects.filter(pk__in=[p.pk for p in refunds]).update(
        status=Payment.Status.REFUND_PENDING, updated_at=timezone.now()
    )
    refunded = sum((payment.amount for payment in refunds), Decimal("0"))
    if refunds:
        after_commit(partial(_refunds_after_commit, [p.pk for p in refunds]))
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


def _refunds_after_commit(payment_ids: list[int]) -> None:
    failpoint("cancel:after-commit")
    refunds_send(payment_ids=payment_ids)


@command("orders.ship")
def order_ship(*, actor: Actor, order_id: int) -> Order:
    order = _locked_order(actor, order_id, right="orders.ship")
    ensure_allowed(order, "ship")
    if order.lines.filter(backordered__gt=0).exists():
        raise Conflict(f"Order {order.pk} still waits for backordered books.")
    order.status = Order.Status.SHIPPED
    order.save(update_fields=["status", "updated_at"])
    record(OrderShipped(**_event_fields(order)))
    return order


@command("orders.deliver")
def order_deliver(*, actor: Actor, order_id: int) -> Order:
    order = _locked_order(actor, order_id, right="orders.deliver")
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
def backorders_fill(*, actor: Actor, book_id: int) -> int:
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
