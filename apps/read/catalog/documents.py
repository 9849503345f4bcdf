"""Each book's API representation, kept on its listing row as JSON text by the projector.

An uncached read of the books API sends these texts as they are: one indexed query and a join
of strings, with no serializer and no JSON encoding per row (decision record 0008). The
projector writes a row's document whenever it writes the row, so the two never disagree.
`BookListingSerializer` (api.py) describes the same shape for the schema and the browsable API;
a test holds them equal.
"""

import datetime
import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import pydantic_core

from apps.read.catalog.models import BookListing

# What a read selects to send a row: `documents_of` needs both.
ROW = ("book_id", "document")


def document(listing: BookListing) -> str:
    # A date from the table, or the ISO text an event's payload may carry.
    published: object = listing.published_on
    if isinstance(published, datetime.date):
        published = published.isoformat()
    price = Decimal(listing.price)
    # pydantic-core's encoder writes what json.dumps(ensure_ascii=False, separators=(",", ":"))
    # does, in a fifth of the time (a replay writes a document per book).
    text = pydantic_core.to_json(
        {
            "id": listing.book_id,
            "title": listing.title,
            "subtitle": listing.subtitle,
            "isbn": listing.isbn,
            "description": listing.description,
            "format": listing.format,
            "language": listing.language,
            "published_on": published,
            "price": f"{price:.2f}",
            "authors": listing.authors,
            "author_names": listing.author_names,
            "discontinued": listing.discontinued,
            "cover": listing.cover,
            "availability": listing.availability,
            "quantity_available": listing.quantity_available,
            "units_sold": listing.units_sold,
            "allow_backorder": listing.allow_backorder,
            "position": listing.position,
        }
    ).decode()
    # As DRF's renderer does: these two are valid JSON but end a line in JavaScript.
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def documents_of(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """The stored documents of rows read as `values("book_id", "document", ...)`, in order.

    A row written before documents existed (read model version 2, until its rebuild switches)
    has none yet: those few are loaded whole and their documents made here.
    """
    rows = list(rows)
    missing = [row["book_id"] for row in rows if not row["document"]]
    made = {}
    if missing:
        listings = BookListing.objects.in_bulk(missing)
        made = {book_id: document(listing) for book_id, listing in listings.items()}
    return [row["document"] or made[row["book_id"]] for row in rows]


def book_body(book_id: int) -> bytes | None:
    """One book's document, or None when there is no such book."""
    rows = list(BookListing.objects.filter(book_id=book_id).order_by().values(*ROW))
    return documents_of(rows)[0].encode() if rows else None


def page_body(*, next_link: str | None, previous_link: str | None, documents: list[str]) -> bytes:
    """A cursor page of books, as DRF's cursor paginator shapes it."""
    head = json.dumps({"next": next_link, "previous": previous_link}, separators=(",", ":"))
    return f'{head[:-1]},"results":[{",".join(documents)}]}}'.encode()
