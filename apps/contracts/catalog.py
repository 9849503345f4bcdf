"""What the catalog says happened. Payloads carry everything the read side needs to know, because
the read side never looks at the catalog's tables."""

import dataclasses
import datetime
from decimal import Decimal

from typing_extensions import TypedDict  # pydantic reads TypedDicts from here before 3.12

from apps.cqrs.events import Event, Payload, upcaster


@dataclasses.dataclass(frozen=True, kw_only=True)
class Credit:
    """An author as credited on a book, in cover order."""

    id: int
    name: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class AuthorEvent(Event, abstract=True):
    aggregate_type = "author"
    aggregate_id_field = "author_id"
    author_id: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class AuthorAdded(AuthorEvent):
    name: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class AuthorRenamed(AuthorEvent):
    old_name: str
    name: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class BookEvent(Event, abstract=True):
    aggregate_type = "book"
    aggregate_id_field = "book_id"
    book_id: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class BookAdded(BookEvent):
    # v2: the shop sells books in more than one language; `language` is an ISO 639-1 code.
    schema_version = 2
    title: str
    subtitle: str
    isbn: str
    description: str
    format: str
    language: str
    published_on: datetime.date | None
    price: Decimal
    authors: list[Credit]


@upcaster(BookAdded, from_version=1)
def _book_added_v1(payload: Payload) -> Payload:
    # Until v2 the shop sold English books only.
    return {**payload, "language": "en"}


class BookDetails(TypedDict, total=False):
    """The details a BookDetailsChanged may carry: only those that changed."""

    title: str
    subtitle: str
    description: str
    format: str
    language: str
    published_on: datetime.date | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class BookDetailsChanged(BookEvent):
    changes: BookDetails


@dataclasses.dataclass(frozen=True, kw_only=True)
class PriceChanged(BookEvent):
    old_price: Decimal
    new_price: Decimal


@dataclasses.dataclass(frozen=True, kw_only=True)
class BookCoverChanged(BookEvent):
    """The cover's sizes, as names in the file storage (apps/write/catalog/covers.py); both
    empty when the cover was removed."""

    small: str
    large: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class BookDiscontinued(BookEvent):
    pass


@dataclasses.dataclass(frozen=True, kw_only=True)
class BookReinstated(BookEvent):
    pass
