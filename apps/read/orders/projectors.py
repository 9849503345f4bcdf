from collections.abc import Sequence
from decimal import Decimal

from apps.contracts.customers import CustomerProfileChanged, CustomerSignedUp
from apps.contracts.orders import (
    BackorderFilled,
    OrderCancelled,
    OrderDelivered,
    OrderEvent,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
)
from apps.cqrs.bulk import save_rows
from apps.cqrs.events import as_json
from apps.cqrs.models import DomainEvent
from apps.cqrs.projectors import READ_ALIAS, Projector, register
from apps.cqrs.rows import rows_by_pk
from apps.read.orders.models import CustomerProfile, CustomerTotals, OrderSummary

STATUS_AFTER = {
    OrderPaid: "paid",
    OrderShipped: "shipped",
    OrderDelivered: "delivered",
    OrderCancelled: "cancelled",
}
SUMMARY_FIELDS = [f.name for f in OrderSummary._meta.concrete_fields if not f.primary_key]


@register
class OrderHistoryProjector(Projector):
    name = "orders.history"
    handles = frozenset({OrderPlaced, BackorderFilled, *STATUS_AFTER})
    models = (OrderSummary, CustomerTotals)
    # By customer: a customer's orders and their totals row are all in one partition.
    partitions = 2
    partition_by = "customer_id"
    # An order's summary depends on its own events only (a customer's totals are sums): a
    # failing event parks its order, and the others go on.
    parks_by_key = True

    def apply_batch(self, events: Sequence[DomainEvent]) -> None:
        # As the catalog listing does: the batch's rows are read once, changed in memory and
        # written back in one upsert, or with COPY for new ones (a replay creates nearly all).
        summaries = rows_by_pk(OrderSummary, {e.data.order_id for e in events})
        totals = rows_by_pk(CustomerTotals, {e.data.customer_id for e in events})
        stored_summaries, stored_totals = set(summaries), set(totals)
        for event in events:
            match event.data:
                case OrderPlaced() as placed:
                    self._placed(summaries, totals, placed, event)
                case BackorderFilled() as filled:
                    self._backorder_filled(self._summary(summaries, filled), filled, event)
                case data:
                    self._status(self._summary(summaries, data), totals, data, event)
        save_rows(
            OrderSummary,
            list(summaries.values()),
            new=set(summaries) - stored_summaries,
            update_fields=SUMMARY_FIELDS,
            using=READ_ALIAS,
        )
        save_rows(
            CustomerTotals,
            list(totals.values()),
            new=set(totals) - stored_totals,
            update_fields=["orders", "spent", "position"],
            using=READ_ALIAS,
        )

    @staticmethod
    def _summary(summaries: dict[int, OrderSummary], data: OrderEvent) -> OrderSummary:
        try:
            return summaries[data.order_id]
        except KeyError:
            raise OrderSummary.DoesNotExist(f"No summary of order {data.order_id}") from None

    def _placed(self, summaries: dict, totals: dict, placed: OrderPlaced, event: DomainEvent):
        summary = summaries.get(placed.order_id) or OrderSummary(
            order_id=placed.order_id,
            customer_id=placed.customer_id,
            shipping_address=placed.shipping_address,
            placed_at=event.recorded_at,
            updated_at=event.recorded_at,
        )
        summary.status = "placed"
        summary.total = placed.total
        summary.lines = [as_json(line) for line in placed.lines]
        summary.item_count = sum(line.quantity for line in placed.lines)
        summary.timeline = [self._step("placed", event)]
        summary.position = event.position
        summaries[summary.order_id] = summary
        customer = totals.get(placed.customer_id)
        if customer is None:
            customer = totals[placed.customer_id] = CustomerTotals(customer_id=placed.customer_id)
        customer.orders += 1
        customer.position = event.position

    @staticmethod
    def _backorder_filled(summary: OrderSummary, filled: BackorderFilled, event: DomainEvent):
        for line in summary.lines:
            if line["line_id"] == filled.line_id:
                line["backordered"] = filled.still_backordered
        summary.position = event.position

    def _status(self, summary: OrderSummary, totals: dict, data: OrderEvent, event: DomainEvent):
        status = STATUS_AFTER[type(data)]
        summary.status = status
        summary.timeline = [*summary.timeline, self._step(status, event)]
        summary.updated_at = event.recorded_at
        summary.position = event.position
        spent = None
        match data:
            case OrderPaid():
                spent = data.amount
            case OrderCancelled():
                summary.refunded = data.refunded
                summary.cancel_reason = data.reason
                summary.lines = [{**line, "backordered": 0} for line in summary.lines]
                spent = -data.refunded
        customer = totals.get(data.customer_id)
        if spent and customer is not None:
            customer.spent = max(customer.spent + spent, Decimal("0"))
            customer.position = event.position

    @staticmethod
    def _step(status: str, event: DomainEvent) -> dict:
        return {"status": status, "at": event.recorded_at.isoformat(), "position": event.position}


@register
class CustomerProfileProjector(Projector):
    name = "customers.profile"
    handles = frozenset({CustomerSignedUp, CustomerProfileChanged})
    models = (CustomerProfile,)

    def apply(self, event: DomainEvent) -> None:
        data = event.data
        CustomerProfile.objects.bulk_create(
            [
                CustomerProfile(
                    customer_id=data.customer_id,
                    full_name=data.full_name,
                    shipping_address=data.shipping_address,
                    position=event.position,
                )
            ],
            update_conflicts=True,
            unique_fields=["customer_id"],
            update_fields=["full_name", "shipping_address", "position"],
        )
