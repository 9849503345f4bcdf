from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from apps.contracts.catalog import (
    BookAdded,
    BookDetailsChanged,
    BookDiscontinued,
    BookEvent,
    BookReinstated,
)
from apps.contracts.inventory import (
    BackorderPolicyChanged,
    StockAdjusted,
    StockEvent,
    StockReceived,
    StockReleased,
    StockReserved,
)
from apps.contracts.orders import OrderCancelled, OrderPaid, OrderPlaced, PlacedLine, SoldLine
from apps.cqrs.bulk import add_to_rows, save_rows
from apps.cqrs.models import DomainEvent
from apps.cqrs.projectors import READ_ALIAS, Projector, register
from apps.cqrs.rows import rows_by_pk
from apps.read.reports.models import DailyRevenue, DailySales, StockLevel

BOOK_EVENTS = (
    BookAdded,
    BookDetailsChanged,
    BookDiscontinued,
    BookReinstated,
    BackorderPolicyChanged,
    StockReceived,
    StockAdjusted,
    StockReserved,
    StockReleased,
)


@register
class ReportsProjector(Projector):
    name = "reports.figures"
    handles = frozenset({*BOOK_EVENTS, OrderPlaced, OrderPaid, OrderCancelled})
    models = (DailySales, DailyRevenue, StockLevel)

    def apply_batch(self, events: Sequence[DomainEvent]) -> None:
        # Stock levels are read once per batch, changed in memory and written back in one
        # upsert (as the catalog listing does). Sales (per day and book) and revenue (per day)
        # are sums: the batch's are added to the stored rows in the upsert, with no read.
        per_book = [e.data for e in events if isinstance(e.data, BOOK_EVENTS)]
        levels = rows_by_pk(StockLevel, {data.book_id for data in per_book})
        stored = set(levels)
        dirty: set[int] = set()
        sales: dict[tuple, list] = {}  # (day, book id) -> [title, units]
        revenue: dict[date, list] = {}  # day -> [amount, payments, refunds]
        for event in events:
            if isinstance(event.data, BOOK_EVENTS):
                dirty.update(self._level(levels, event.data))
            else:
                self._figures(event, sales, revenue)
        if dirty:
            save_rows(
                StockLevel,
                [levels[i] for i in sorted(dirty)],
                new=dirty - stored,
                update_fields=["title", "on_hand", "allow_backorder", "discontinued"],
                using=READ_ALIAS,
            )
        if sales:
            self._save_sales(sales)
        if revenue:
            self._save_revenue(revenue)

    @staticmethod
    def _level(levels: dict[int, StockLevel], data: BookEvent | StockEvent) -> list[int]:
        if isinstance(data, BookAdded):
            levels.setdefault(data.book_id, StockLevel(book_id=data.book_id, title=data.title))
            return [data.book_id]
        level = levels.get(data.book_id)
        if level is None:
            return []
        match data:
            case BookDetailsChanged():
                level.title = data.changes.get("title", level.title)
            case BookDiscontinued() | BookReinstated():
                level.discontinued = isinstance(data, BookDiscontinued)
            case BackorderPolicyChanged():
                level.on_hand = data.on_hand
                level.allow_backorder = data.allow_backorder
            case StockEvent():
                level.on_hand = data.on_hand
        return [data.book_id]

    @staticmethod
    def _figures(event: DomainEvent, sales: dict, revenue: dict) -> None:
        day = event.recorded_at.date()
        match event.data:
            case OrderPlaced(lines=lines):
                _count_sales(sales, day, lines, sign=1)
            case OrderPaid(amount=amount):
                _count_revenue(revenue, day, amount, payments=1)
            case OrderCancelled(lines=lines, placed_at=placed_at, refunded=refunded):
                # Sales count against the day the order was placed, refunds on the day they
                # happen.
                _count_sales(sales, placed_at.date(), lines, sign=-1)
                if refunded:
                    _count_revenue(revenue, day, -refunded, refunds=1)

    @staticmethod
    def _save_sales(sales: dict[tuple, list]) -> None:
        rows = [
            {"day": day, "book_id": book_id, "title": title, "units": units}
            for (day, book_id), (title, units) in sales.items()
        ]
        add_to_rows(DailySales, rows, key=["day", "book_id"], added=["units"], using=READ_ALIAS)

    @staticmethod
    def _save_revenue(revenue: dict[date, list]) -> None:
        rows = [
            {"day": day, "revenue": amount, "payments": payments, "refunds": refunds}
            for day, (amount, payments, refunds) in revenue.items()
        ]
        add_to_rows(
            DailyRevenue,
            rows,
            key=["day"],
            added=["revenue", "payments", "refunds"],
            using=READ_ALIAS,
        )


def _count_sales(
    sales: dict, day: date, lines: Sequence[PlacedLine | SoldLine], *, sign: int
) -> None:
    for line in lines:
        counted = sales.setdefault((day, line.book_id), [line.title, 0])
        counted[1] += sign * line.quantity


def _count_revenue(revenue: dict, day: date, amount: Decimal, payments=0, refunds=0) -> None:
    counted = revenue.setdefault(day, [Decimal("0"), 0, 0])
    counted[0] += amount
    counted[1] += payments
    counted[2] += refunds
