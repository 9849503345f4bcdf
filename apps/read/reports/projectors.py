from decimal import Decimal

from django.db.models import F
from django.utils.dateparse import parse_datetime

from apps.cqrs.models import DomainEvent
from apps.cqrs.projectors import Projector, register
from apps.read.reports.models import DailyRevenue, DailySales, StockLevel

STOCK_EVENTS = {"StockReceived", "StockAdjusted", "StockReserved", "StockReleased"}


@register
class ReportsProjector(Projector):
    name = "reports.figures"
    handles = frozenset(
        {
            "BookAdded",
            "BookDetailsChanged",
            "BookDiscontinued",
            "BookReinstated",
            "BackorderPolicyChanged",
            "OrderPlaced",
            "OrderPaid",
            "OrderCancelled",
            *STOCK_EVENTS,
        }
    )
    models = (DailySales, DailyRevenue, StockLevel)

    def apply(self, event: DomainEvent) -> None:
        p, kind = event.payload, event.event_type
        if kind == "BookAdded":
            StockLevel.objects.bulk_create(
                [StockLevel(book_id=p["book_id"], title=p["title"])], ignore_conflicts=True
            )
        elif kind == "BookDetailsChanged" and "title" in p["changes"]:
            StockLevel.objects.filter(book_id=p["book_id"]).update(title=p["changes"]["title"])
        elif kind in {"BookDiscontinued", "BookReinstated"}:
            StockLevel.objects.filter(book_id=p["book_id"]).update(
                discontinued=kind == "BookDiscontinued"
            )
        elif kind in STOCK_EVENTS:
            StockLevel.objects.filter(book_id=p["book_id"]).update(on_hand=p["on_hand"])
        elif kind == "BackorderPolicyChanged":
            StockLevel.objects.filter(book_id=p["book_id"]).update(
                on_hand=p["on_hand"], allow_backorder=p["allow_backorder"]
            )
        elif kind == "OrderPlaced":
            self._sales(event.recorded_at.date(), p["lines"], sign=1)
        elif kind == "OrderPaid":
            self._revenue(event, Decimal(p["amount"]), payments=1)
        elif kind == "OrderCancelled":
            # Sales count against the day the order was placed, refunds on the day they happen.
            self._sales(parse_datetime(p["placed_at"]).date(), p["lines"], sign=-1)
            if Decimal(p["refunded"]):
                self._revenue(event, -Decimal(p["refunded"]), refunds=1)

    @staticmethod
    def _sales(day, lines: list[dict], *, sign: int) -> None:
        DailySales.objects.bulk_create(
            [DailySales(day=day, book_id=line["book_id"], title=line["title"]) for line in lines],
            ignore_conflicts=True,
        )
        for line in lines:
            DailySales.objects.filter(day=day, book_id=line["book_id"]).update(
                units=F("units") + sign * line["quantity"]
            )

    @staticmethod
    def _revenue(event: DomainEvent, amount: Decimal, payments: int = 0, refunds: int = 0):
        day = event.recorded_at.date()
        DailyRevenue.objects.bulk_create([DailyRevenue(day=day)], ignore_conflicts=True)
        DailyRevenue.objects.filter(day=day).update(
            revenue=F("revenue") + amount,
            payments=F("payments") + payments,
            refunds=F("refunds") + refunds,
        )
