from decimal import Decimal

from django.db.models import F
from django.db.models.functions import Greatest

from apps.cqrs.models import DomainEvent
from apps.cqrs.projectors import Projector, register
from apps.read.orders.models import CustomerProfile, CustomerTotals, OrderSummary

STATUS_AFTER = {
    "OrderPaid": "paid",
    "OrderShipped": "shipped",
    "OrderDelivered": "delivered",
    "OrderCancelled": "cancelled",
}


@register
class OrderHistoryProjector(Projector):
    name = "orders.history"
    handles = frozenset({"OrderPlaced", "BackorderFilled", *STATUS_AFTER})
    models = (OrderSummary, CustomerTotals)

    def apply(self, event: DomainEvent) -> None:
        p = event.payload
        if event.event_type == "OrderPlaced":
            self._placed(event)
        elif event.event_type == "BackorderFilled":
            summary = OrderSummary.objects.get(order_id=p["order_id"])
            for line in summary.lines:
                if line["line_id"] == p["line_id"]:
                    line["backordered"] = p["still_backordered"]
            summary.position = event.position
            summary.save(update_fields=["lines", "position"])
        else:
            self._status(event, STATUS_AFTER[event.event_type])

    def _placed(self, event: DomainEvent) -> None:
        p = event.payload
        OrderSummary.objects.bulk_create(
            [
                OrderSummary(
                    order_id=p["order_id"],
                    customer_id=p["customer_id"],
                    status="placed",
                    total=p["total"],
                    lines=p["lines"],
                    item_count=sum(line["quantity"] for line in p["lines"]),
                    shipping_address=p["shipping_address"],
                    timeline=[self._step("placed", event)],
                    placed_at=event.recorded_at,
                    updated_at=event.recorded_at,
                    position=event.position,
                )
            ],
            update_conflicts=True,
            unique_fields=["order_id"],
            update_fields=["status", "total", "lines", "item_count", "timeline", "position"],
        )
        CustomerTotals.objects.bulk_create(
            [CustomerTotals(customer_id=p["customer_id"], position=event.position)],
            ignore_conflicts=True,
        )
        CustomerTotals.objects.filter(customer_id=p["customer_id"]).update(
            orders=F("orders") + 1, position=event.position
        )

    def _status(self, event: DomainEvent, status: str) -> None:
        p = event.payload
        summary = OrderSummary.objects.get(order_id=p["order_id"])
        summary.status = status
        summary.timeline = [*summary.timeline, self._step(status, event)]
        summary.updated_at = event.recorded_at
        summary.position = event.position
        fields = ["status", "timeline", "updated_at", "position"]
        if event.event_type == "OrderCancelled":
            summary.refunded = Decimal(p["refunded"])
            summary.cancel_reason = p["reason"]
            summary.lines = [{**line, "backordered": 0} for line in summary.lines]
            fields += ["refunded", "cancel_reason", "lines"]
        summary.save(update_fields=fields)
        spent = {
            "OrderPaid": Decimal(p.get("amount", "0")),
            "OrderCancelled": -Decimal(p.get("refunded", "0")),
        }.get(event.event_type)
        if spent:
            CustomerTotals.objects.filter(customer_id=p["customer_id"]).update(
                spent=Greatest(F("spent") + spent, Decimal("0")), position=event.position
            )

    @staticmethod
    def _step(status: str, event: DomainEvent) -> dict:
        return {"status": status, "at": event.recorded_at.isoformat(), "position": event.position}


@register
class CustomerProfileProjector(Projector):
    name = "customers.profile"
    handles = frozenset({"CustomerSignedUp", "CustomerProfileChanged"})
    models = (CustomerProfile,)

    def apply(self, event: DomainEvent) -> None:
        p = event.payload
        CustomerProfile.objects.bulk_create(
            [
                CustomerProfile(
                    customer_id=p["customer_id"],
                    full_name=p["full_name"],
                    shipping_address=p["shipping_address"],
                    position=event.position,
                )
            ],
            update_conflicts=True,
            unique_fields=["customer_id"],
            update_fields=["full_name", "shipping_address", "position"],
        )
