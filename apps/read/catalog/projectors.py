from collections.abc import Iterable, Sequence
from functools import partial

from django.db import transaction
from django.db.models import F

from apps.cqrs.models import DomainEvent
from apps.cqrs.projectors import READ_ALIAS, Projector, register
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
_DETAILS = {"title", "subtitle", "description", "format", "published_on"}


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
        # Runs of BookAdded (seeding, replay) become one INSERT ... ON CONFLICT DO UPDATE.
        pending: list[BookListing] = []
        touched: set[int] = set()
        for event in events:
            if event.event_type == "BookAdded":
                pending.append(_listing_from_book_added(event))
                continue
            self._flush(pending)
            pending = []
            touched.update(self.apply(event) or ())
        self._flush(pending)
        touched.update(e.payload["book_id"] for e in events if "book_id" in e.payload)
        if touched:
            transaction.on_commit(
                partial(cache.refresh, touched, serialized_listings), using=READ_ALIAS
            )

    def reset(self) -> None:
        super().reset()
        transaction.on_commit(cache.retire_everything, using=READ_ALIAS)

    def apply(self, event: DomainEvent) -> Iterable[int]:
        """Apply one event; returns the ids of listings it changed beyond the event's book."""
        p = event.payload
        match event.event_type:
            case "BookAdded":
                self._flush([_listing_from_book_added(event)])
            case "PriceChanged":
                self._update(p["book_id"], event, price=p["new_price"])
            case "BookDetailsChanged":
                listing = BookListing.objects.get(book_id=p["book_id"])
                for field, value in p["changes"].items():
                    if field in _DETAILS:
                        setattr(listing, field, value)
                listing.search_text = search_text(listing)
                listing.position = event.position
                listing.save()
            case "BookDiscontinued":
                self._restock(event, discontinued=True)
            case "BookReinstated":
                self._restock(event, discontinued=False)
            case "AuthorRenamed":
                return self._rename_author(event)
            case "OrderPlaced" | "OrderCancelled":
                sign = 1 if event.event_type == "OrderPlaced" else -1
                for line in p["lines"]:
                    BookListing.objects.filter(book_id=line["book_id"]).update(
                        units_sold=F("units_sold") + sign * line["quantity"]
                    )
                return [line["book_id"] for line in p["lines"]]
            case "BackorderPolicyChanged":
                self._restock(
                    event, quantity_available=p["on_hand"], allow_backorder=p["allow_backorder"]
                )
            case _:  # the stock events, each with the units on hand after it
                self._restock(event, quantity_available=p["on_hand"])

    @staticmethod
    def _restock(event: DomainEvent, **fields) -> None:
        listing = BookListing.objects.filter(book_id=event.payload["book_id"]).first()
        if listing is None:
            return
        for field, value in fields.items():
            setattr(listing, field, value)
        listing.availability = availability_of(
            on_hand=listing.quantity_available,
            allow_backorder=listing.allow_backorder,
            discontinued=listing.discontinued,
        )
        listing.position = event.position
        listing.save(update_fields=[*fields, "availability", "position"])

    @staticmethod
    def _update(book_id: int, event: DomainEvent, **fields) -> None:
        BookListing.objects.filter(book_id=book_id).update(**fields, position=event.position)

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

    @staticmethod
    def _flush(listings: list[BookListing]) -> None:
        if listings:
            BookListing.objects.bulk_create(
                listings,
                update_conflicts=True,
                unique_fields=["book_id"],
                update_fields=_LISTING_FIELDS,
            )


def serialized_listings(book_ids: Iterable[int]) -> dict[int, dict]:
    from apps.read.catalog.api import BookListingSerializer

    listings = BookListing.objects.filter(book_id__in=list(book_ids))
    return {listing.book_id: BookListingSerializer(listing).data for listing in listings}
