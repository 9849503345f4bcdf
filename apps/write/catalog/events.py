"""What the catalog says happened. Payloads carry everything the read side needs to know, because
the read side never looks at the catalog's tables."""

import dataclasses
import datetime
from decimal import Decimal

from apps.cqrs.events import Event


@dataclasses.dataclass(frozen=True, kw_only=True)
class AuthorEvent(Event):
    aggregate_type = "author"
    aggregate_id_field = "author_id"
    author_id: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class AuthorAdded(AuthorEvent):
    name: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class BookEvent(Event):
    aggregate_type = "book"
    aggregate_id_field = "book_id"
    book_id: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class BookAdded(BookEvent):
    title: str
    subtitle: str
    isbn: str
    description: str
    format: str
    published_on: datetime.date | None
    price: Decimal
    # [{"id": 1, "name": "Ursula K. Le Guin"}, ...] in the order credited
    authors: list[dict]


@dataclasses.dataclass(frozen=True, kw_only=True)
class PriceChanged(BookEvent):
    old_price: Decimal
    new_price: Decimal


@dataclasses.dataclass(frozen=True, kw_only=True)
class AuthorRenamed(AuthorEvent):
    old_name: str
    name: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class BookDetailsChanged(BookEvent):
    # Only the fields that changed, with their new values.
    changes: dict


@dataclasses.dataclass(frozen=True, kw_only=True)
class BookDiscontinued(BookEvent):
    pass


@dataclasses.dataclass(frozen=True, kw_only=True)
class BookReinstated(BookEvent):
    pass
