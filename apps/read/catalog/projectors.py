from collections.abc import Iterable, Sequence
from functools import partial

from django.db import transaction

from apps.cqrs.bulk import save_rows
from apps.cqrs.models import DomainEvent
from apps.cqrs.projectors import READ_ALIAS, Projector, register, replaying
from apps.read.catalog import cache
from apps.read.catalog.models import BookListing, availability_of

_LISTING_FIELDS = [
    "title",
    "subtitle",
    "isbn",
    "description",
    "format",
    "published_on",
    "price",
    "authors",
    "author_names",
    "discontinued",
    "search_text",
    "position",
]
_ALL_FIELDS = [
    *_LISTING_FIELDS,
    "quantity_available",
    "units_sold",
    "allow_backorder",
    "availability",
]
_DETAILS = {"title", "subtitle", "description", "format", "published_on"}


def _book_ids(events: Sequence[DomainEvent]) -> set[int]:
    ids = {e.payload["book_id"] for e in events if "book_id" in e.payload}
    for event in events:
        if event.event_type in ("OrderPlaced", "OrderCancelled"):
            ids.update(line["book_id"] for line in event.payload["lines"])
    return ids


def search_text(listing: BookListing) -> str:
    return " ".join(
        part
        for part in (listing.title, listing.subtitle, listing.author_names, listing.isbn)
        if part
    )


def _listing_from_book_added(event: DomainEvent) -> BookListing:
    p = event.payload
    listing = BookListing(
        book_id=p["book_id"],
        title=p["title"],
        subtitle=p["subtitle"],
        isbn=p["isbn"],
        description=p["description"],
        format=p["format"],
        published_on=p["published_on"],
        price=p["price"],
        authors=p["authors"],
        author_names=", ".join(a["name"] for a in p["authors"]),
        position=event.position,
    )
    listing.search_text = search_text(listing)
    return listing


@register
class BookListingProjector(Projector):
    name = "catalog.book_listing"
    handles = frozenset(
        {
            "BookAdded",
            "PriceChanged",
            "BookDetailsChanged",
            "BookDiscontinued",
            "BookReinstated",
            "AuthorRenamed",
            "StockReceived",
            "StockAdjusted",
            "StockReserved",
            "StockReleased",
            "BackorderPolicyChanged",
            "OrderPlaced",
            "OrderCancelled",
        }
    )
    models = (BookListing,)

    def apply_batch(self, events: Sequence[DomainEvent]) -> None:
        # The batch's listings are read in one query, changed in memory event by event, and
        # written back in one INSERT ... ON CONFLICT DO UPDATE: a replay or a burst of stock
        # events costs two queries per batch rather than two per event. Runners of a projector
        # take turns (apps/cqrs/runtime.py), so nothing else writes these rows meanwhile.
        listings = BookListing.objects.in_bulk(_book_ids(events))
        stored = set(listings)
        dirty: set[int] = set()
        touched = _book_ids(events)
        for event in events:
            if event.event_type == "AuthorRenamed":
                # Touches rows beyond the batch: write what we have, rename in SQL, re-read.
                self._save(listings, dirty, stored)
                renamed = self._rename_author(event)
                listings.update(BookListing.objects.in_bulk(renamed))
                touched.update(renamed)
            else:
                dirty.update(self._change(listings, event))
        self._save(listings, dirty, stored)
        if touched and not replaying():
            transaction.on_commit(
                partial(cache.refresh, touched, serialized_listings), using=READ_ALIAS
            )

    def reset(self) -> None:
        super().reset()
        transaction.on_commit(cache.retire_everything, using=READ_ALIAS)

    def finish_replay(self) -> None:
        # The replay refreshed no entry; retire those readers cached from half-rebuilt rows.
        cache.retire_everything()

    @staticmethod
    def _change(listings: dict[int, BookListing], event: DomainEvent) -> list[int]:
        """Apply one event to the listings in memory; returns the ids of those it changed."""
        p = event.payload
        if event.event_type == "BookAdded":
            added = _listing_from_book_added(event)
            if p["book_id"] in listings:  # a repeat: keep the stock and sales figures
                for field in _LISTING_FIELDS:
                    setattr(listings[p["book_id"]], field, getattr(added, field))
            else:
                listings[p["book_id"]] = added
            return [p["book_id"]]
        if event.event_type in ("OrderPlaced", "OrderCancelled"):
            sign = 1 if event.event_type == "OrderPlaced" else -1
            changed = []
            for line in p["lines"]:
                if listing := listings.get(line["book_id"]):
                    listing.units_sold += sign * line["quantity"]
                    changed.append(line["book_id"])
            return changed
        listing = listings.get(p["book_id"])
        if listing is None:
            return []
        match event.event_type:
            case "PriceChanged":
                listing.price = p["new_price"]
            case "BookDetailsChanged":
                for field, value in p["changes"].items():
                    if field in _DETAILS:
                        setattr(listing, field, value)
                listing.search_text = search_text(listing)
            case "BookDiscontinued" | "BookReinstated":
                listing.discontinued = event.event_type == "BookDiscontinued"
            case "BackorderPolicyChanged":
                listing.quantity_available = p["on_hand"]
                listing.allow_backorder = p["allow_backorder"]
            case _:  # the stock events, each with the units on hand after it
                listing.quantity_available = p["on_hand"]
        listing.availability = availability_of(
            on_hand=listing.quantity_available,
            allow_backorder=listing.allow_backorder,
            discontinued=listing.discontinued,
        )
        listing.position = event.position
        return [p["book_id"]]

    @staticmethod
    def _save(listings: dict[int, BookListing], dirty: set[int], stored: set[int]) -> None:
        """Write the changed listings; `stored` holds the ids already in the table."""
        if dirty:
            save_rows(
                BookListing,
                [listings[i] for i in sorted(dirty)],
                new=dirty - stored,
                update_fields=_ALL_FIELDS,
                using=READ_ALIAS,
            )
            stored |= dirty
            dirty.clear()

    @staticmethod
    def _rename_author(event: DomainEvent) -> list[int]:
        author_id, old, new = (event.payload[k] for k in ("author_id", "old_name", "name"))
        # Narrow by name in SQL (portable), then match the id exactly.
        candidates = BookListing.objects.filter(author_names__contains=old)
        changed = []
        for listing in candidates:
            if any(a["id"] == author_id for a in listing.authors):
                listing.authors = [
                    {**a, "name": new} if a["id"] == author_id else a for a in listing.authors
                ]
                listing.author_names = ", ".join(a["name"] for a in listing.authors)
                listing.search_text = search_text(listing)
                listing.position = event.position
                changed.append(listing)
        BookListing.objects.bulk_update(
            changed, ["authors", "author_names", "search_text", "position"]
        )
        return [listing.book_id for listing in changed]


def serialized_listings(book_ids: Iterable[int]) -> dict[int, dict]:
    from apps.read.catalog.api import BookListingSerializer

    listings = BookListing.objects.filter(book_id__in=list(book_ids))
    # One serializer for all of them: building a ModelSerializer's fields is its dearest part.
    return {data["id"]: data for data in BookListingSerializer(listings, many=True).data}
