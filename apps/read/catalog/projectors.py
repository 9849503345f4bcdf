from collections.abc import Sequence

from apps.cqrs.models import DomainEvent
from apps.cqrs.projectors import Projector, register
from apps.read.catalog.models import BookListing

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
    "position",
]


def _listing_from_book_added(event: DomainEvent) -> BookListing:
    p = event.payload
    return BookListing(
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


@register
class BookListingProjector(Projector):
    name = "catalog.book_listing"
    handles = frozenset({"BookAdded", "PriceChanged"})
    models = (BookListing,)

    def apply_batch(self, events: Sequence[DomainEvent]) -> None:
        # Runs of BookAdded (seeding, replay) become one INSERT ... ON CONFLICT DO UPDATE.
        pending: list[BookListing] = []
        for event in events:
            if event.event_type == "BookAdded":
                pending.append(_listing_from_book_added(event))
                continue
            self._flush(pending)
            pending = []
            self.apply(event)
        self._flush(pending)

    def apply(self, event: DomainEvent) -> None:
        if event.event_type == "BookAdded":
            self._flush([_listing_from_book_added(event)])
        elif event.event_type == "PriceChanged":
            BookListing.objects.filter(book_id=event.payload["book_id"]).update(
                price=event.payload["new_price"], position=event.position
            )

    @staticmethod
    def _flush(listings: list[BookListing]) -> None:
        if listings:
            BookListing.objects.bulk_create(
                listings,
                update_conflicts=True,
                unique_fields=["book_id"],
                update_fields=_LISTING_FIELDS,
            )
