from collections.abc import Sequence
from decimal import Decimal

from django.db.models import F
from django.utils.dateparse import parse_datetime

from apps.cqrs.bulk import save_rows
from apps.cqrs.models import DomainEvent
from apps.cqrs.projectors import READ_ALIAS, Projector, register
from apps.read.reports.models import DailyRevenue, DailySales, StockLevel

STOCK_EVENTS = {"StockReceived", "StockAdjusted", "StockReserved", "StockReleased"}
BOOK_EVENTS = {
    "BookAdded",
    "BookDetailsChanged",
    "BookDiscontinued",
    "BookReinstated",
    "BackorderPolicyChanged",
    *STOCK_EVENTS,
}


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

    def apply_batch(self, events: Sequence[DomainEvent]) -> None:
        # Stock levels, one row per book, are read once per batch, changed in memory and
        # written back in one upsert (as the catalog listing does); sales and revenue, a few
        # rows per day, are counted in SQL event by event.
        per_book = [e for e in events if e.event_type in BOOK_EVENTS]
        levels = StockLevel.objects.in_bulk({e.payload["book_id"] for e in per_book})
        stored = set(levels)
        dirty: set[int] = set()
        for event in events:
            if event.event_type in BOOK_EVENTS:
                dirty.update(self._level(levels, event))
            else:
                self._figures(event)
        if dirty:
            save_rows(
                StockLevel,
                [levels[i] for i in sorted(dirty)],
                new=dirty - stored,
                update_fields=["title", "on_hand", "allow_backorder", "discontinued"],
                using=READ_ALIAS,
            )

    @staticmethod
    def _level(levels: dict[int, StockLevel], event: DomainEvent) -> list[int]:
        p, kind = event.payload, event.event_type
        if kind == "BookAdded":
            levels.setdefault(p["book_id"], StockLevel(book_id=p["book_id"], title=p["title"]))
            return [p["book_id"]]
        level = levels.get(p["book_id"])
        if level is None:
            return []
        if kind == "BookDetailsChanged":
            level.title = p["changes"].get("title", level.title)
        elif kind in {"BookDiscontinued", "BookReinstated"}:
            level.discontinued = kind == "BookDiscontinued"
        else:  # the stock events and BackorderPolicyChanged, with the units on hand after them
            level.on_hand = p["on_hand"]
            level.allow_backorder = p.get("allow_backorder", level.allow_backorder)
        return [p["book_id"]]

    def _figures(self, event: DomainEvent) -> None:
        p, kind = event.payload, event.event_type
        if kind == "OrderPlaced":
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
