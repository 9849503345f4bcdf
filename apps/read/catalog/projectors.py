from collections.abc import Callable, Sequence
from functools import partial

from django.db import connections, transaction
from django.db.models import Q, QuerySet
from django.db.models.expressions import RawSQL

from apps.contracts.catalog import (
    AuthorRenamed,
    BookAdded,
    BookCoverChanged,
    BookDetailsChanged,
    BookDiscontinued,
    BookEvent,
    BookReinstated,
    PriceChanged,
)
from apps.contracts.inventory import (
    BackorderPolicyChanged,
    StockAdjusted,
    StockEvent,
    StockReceived,
    StockReleased,
    StockReserved,
)
from apps.contracts.orders import OrderCancelled, OrderPlaced
from apps.cqrs.bulk import new_row, save_rows
from apps.cqrs.events import as_json
from apps.cqrs.models import DomainEvent
from apps.cqrs.projectors import (
    READ_ALIAS,
    Partition,
    Projector,
    key_partition,
    key_partition_sql,
    not_written_yet,
    register,
    replay_shard,
    replaying,
)
from apps.cqrs.rows import rows_by_pk
from apps.read.catalog import cache
from apps.read.catalog.documents import document
from apps.read.catalog.models import (
    VOCABULARY_WORD,
    AuthorName,
    BookListing,
    SearchWord,
    availability_of,
)

_LISTING_FIELDS = [
    "title",
    "subtitle",
    "isbn",
    "description",
    "format",
    "language",
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
    "cover_small",
    "cover_large",
    "document",
]


# What the search box's vocabulary and author names are made of (`_vocabulary`,
# `_save_author_names`), besides the renames every shard reads: a replay's first shard reads all
# of them, and alone writes those tables.
_SHARED_TABLES_FED_BY = [BookAdded.event_type, BookDetailsChanged.event_type]


def _own_books() -> Callable[[int], bool]:
    """Whether a book's listing is this runner's to write: every one, except in a replay split
    by rows (`Projector.replays_by_rows`), where each shard has the books whose id falls in it."""
    shard = replay_shard()
    if shard is None:
        return lambda book_id: True
    return lambda book_id: key_partition(str(book_id), shard.count) == shard.index


def _book_ids(events: Sequence[DomainEvent]) -> set[int]:
    ids = set()
    for event in events:
        match event.data:
            case BookEvent(book_id=book_id) | StockEvent(book_id=book_id):
                ids.add(book_id)
            case OrderPlaced(lines=lines) | OrderCancelled(lines=lines):
                ids.update(line.book_id for line in lines)
    return ids


def _vocabulary(events: Sequence[DomainEvent]) -> set[str]:
    """The words of the titles, subtitles and author names these events bring: each event's
    own, so that a replay adds the words the live runs added, however they were batched."""
    texts: list[str] = []
    for event in events:
        match event.data:
            case BookAdded():
                texts += [event.data.title, event.data.subtitle]
                texts += [credit.name for credit in event.data.authors]
            case BookDetailsChanged(changes=changes):
                texts += [changes.get("title", ""), changes.get("subtitle", "")]
            case AuthorRenamed(name=name):
                texts.append(name)
    return {word for text in texts for word in VOCABULARY_WORD.findall(text.lower())}


def _save_author_names(events: Sequence[DomainEvent]) -> None:
    """Authors credited by these events' new books, and the new names of those renamed. A
    credit never carries an older name than the table's (the write side credits by the current
    name), so credits are only inserted: rewriting every author of every batch would cost a
    replay a row version per credit; the renames are written after them."""
    credited: dict[int, str] = {}
    renamed: dict[int, str] = {}
    for event in events:
        match event.data:
            case BookAdded(authors=credits):
                credited.update((credit.id, credit.name) for credit in credits)
            case AuthorRenamed(author_id=author_id, name=name):
                renamed[author_id] = name
    authors = AuthorName.objects.using(READ_ALIAS)
    if new := not_written_yet("catalog.authors", sorted(credited)):
        authors.bulk_create(
            [AuthorName(author_id=i, name=credited[i]) for i in new], ignore_conflicts=True
        )
    for author_id, name in renamed.items():
        authors.filter(author_id=author_id).update(name=name)


def search_text(listing: BookListing) -> str:
    return " ".join(
        part
        for part in (listing.title, listing.subtitle, listing.author_names, listing.isbn)
        if part
    )


def _listing_from_book_added(added: BookAdded, position: int) -> BookListing:
    listing = new_row(
        BookListing,
        book_id=added.book_id,
        title=added.title,
        subtitle=added.subtitle,
        isbn=added.isbn,
        description=added.description,
        format=added.format,
        language=added.language,
        published_on=added.published_on,
        price=added.price,
        authors=[as_json(credit) for credit in added.authors],
        author_names=", ".join(credit.name for credit in added.authors),
        position=position,
    )
    listing.search_text = search_text(listing)
    return listing


@register
class BookListingProjector(Projector):
    name = "catalog.book_listing"
    # 2: listings carry the book's language (docs/upgrades.md).
    # 3: and their API document (documents.py), and their cover.
    # 4: and the vocabulary misspelt searches are corrected to (SearchWord).
    # 5: and each author's name once, for the search box's suggestions (AuthorName).
    # 6: search vectors set by a trigger, names_vector a concatenation (read_catalog 0022).
    version = 6
    handles = frozenset(
        {
            BookAdded,
            PriceChanged,
            BookDetailsChanged,
            BookCoverChanged,
            BookDiscontinued,
            BookReinstated,
            AuthorRenamed,
            StockReceived,
            StockAdjusted,
            StockReserved,
            StockReleased,
            BackorderPolicyChanged,
            OrderPlaced,
            OrderCancelled,
        }
    )
    models = (BookListing, SearchWord, AuthorName)
    # A listing is one book's, but an order or an author's rename touches several: replays are
    # split by book (the listing was a replay's longest part by far).
    replays_by_rows = True

    def shard_events(
        self, events: QuerySet[DomainEvent], shard: Partition
    ) -> QuerySet[DomainEvent]:
        """A book's and its stock's events go to the book's shard; those without a book (orders,
        renames) to every shard; and to the first, everything the shared tables are made of."""
        sql = key_partition_sql("payload->>'book_id'", connections[events.db].vendor)
        mine = ~Q(payload__has_key="book_id") | Q(book_shard=shard.index)
        if shard.index == 0:
            mine |= Q(event_type__in=_SHARED_TABLES_FED_BY)
        return events.alias(book_shard=RawSQL(sql, [shard.count])).filter(mine)

    def apply_batch(self, events: Sequence[DomainEvent]) -> None:
        # The batch's listings are read in one query, changed in memory event by event, and
        # written back in one INSERT ... ON CONFLICT DO UPDATE: a replay or a burst of stock
        # events costs two queries per batch rather than two per event. Runners of a projector
        # take turns (apps/cqrs/runtime.py), so nothing else writes these rows meanwhile; in a
        # replay split by rows, each shard writes only its own books' listings.
        own = _own_books()
        touched = {book_id for book_id in _book_ids(events) if own(book_id)}
        listings = rows_by_pk(BookListing, touched)
        stored = set(listings)
        dirty: set[int] = set()
        for event in events:
            if isinstance(event.data, AuthorRenamed):
                # Touches rows beyond the batch: write what we have, rename in SQL, re-read.
                self._save(listings, dirty, stored)
                renamed = self._rename_author(event.data, event.position, own)
                listings.update(rows_by_pk(BookListing, renamed))
                touched.update(renamed)
            # A new book's listing was not read: it is this runner's if its id is touched.
            elif not isinstance(event.data, BookAdded) or event.data.book_id in touched:
                dirty.update(self._change(listings, event))
        self._save(listings, dirty, stored)
        shard = replay_shard()
        if shard is not None and shard.index != 0:
            return  # the first shard writes the shared tables, seeing all they are made of
        if words := not_written_yet("catalog.words", sorted(_vocabulary(events))):
            SearchWord.objects.using(READ_ALIAS).bulk_create(
                [SearchWord(word=word) for word in words], ignore_conflicts=True
            )
        _save_author_names(events)
        if touched and not replaying():
            # The documents as committed: every touched listing in memory is as written (or as
            # read, when its events changed nothing). Robust: the rows are committed; a failed
            # refresh leaves entries the generation and version already retire, and must not
            # be taken for a failed batch.
            entries = {
                book_id: (listings[book_id].document or document(listings[book_id])).encode()
                for book_id in touched
                if book_id in listings
            }
            transaction.on_commit(partial(cache.refresh, entries), using=READ_ALIAS, robust=True)

    def reset(self) -> None:
        super().reset()
        transaction.on_commit(cache.retire_everything, using=READ_ALIAS, robust=True)

    def finish_replay(self) -> None:
        # The replay refreshed no entry; retire those readers cached from older rows.
        cache.retire_everything()

    @staticmethod
    def _change(listings: dict[int, BookListing], event: DomainEvent) -> list[int]:
        """Apply one event to the listings in memory; returns the ids of those it changed."""
        data = event.data
        match data:
            case BookAdded():
                added = _listing_from_book_added(data, event.position)
                if data.book_id in listings:  # a repeat: keep the stock and sales figures
                    for field in _LISTING_FIELDS:
                        setattr(listings[data.book_id], field, getattr(added, field))
                else:
                    listings[data.book_id] = added
                return [data.book_id]
            case OrderPlaced() | OrderCancelled():
                sign = 1 if isinstance(data, OrderPlaced) else -1
                changed = []
                for line in data.lines:
                    if listing := listings.get(line.book_id):
                        listing.units_sold += sign * line.quantity
                        changed.append(line.book_id)
                return changed
        listing = listings.get(data.book_id)
        if listing is None:
            return []
        match data:
            case PriceChanged():
                listing.price = data.new_price
            case BookDetailsChanged():
                for field, value in data.changes.items():
                    setattr(listing, field, value)
                listing.search_text = search_text(listing)
            case BookCoverChanged():
                listing.cover_small, listing.cover_large = data.small, data.large
            case BookDiscontinued() | BookReinstated():
                listing.discontinued = isinstance(data, BookDiscontinued)
            case BackorderPolicyChanged():
                listing.quantity_available = data.on_hand
                listing.allow_backorder = data.allow_backorder
            case StockEvent():
                listing.quantity_available = data.on_hand
        listing.availability = availability_of(
            on_hand=listing.quantity_available,
            allow_backorder=listing.allow_backorder,
            discontinued=listing.discontinued,
        )
        listing.position = event.position
        return [data.book_id]

    @staticmethod
    def _save(listings: dict[int, BookListing], dirty: set[int], stored: set[int]) -> None:
        """Write the changed listings; `stored` holds the ids already in the table."""
        if dirty:
            for book_id in dirty:
                listings[book_id].document = document(listings[book_id])
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
    def _rename_author(
        renamed: AuthorRenamed, position: int, own: Callable[[int], bool]
    ) -> list[int]:
        author_id, old, new = renamed.author_id, renamed.old_name, renamed.name
        # Narrow by name in SQL (portable), then match the id exactly.
        candidates = BookListing.objects.filter(author_names__contains=old)
        changed = []
        for listing in candidates:
            if own(listing.book_id) and any(a["id"] == author_id for a in listing.authors):
                listing.authors = [
                    {**a, "name": new} if a["id"] == author_id else a for a in listing.authors
                ]
                listing.author_names = ", ".join(a["name"] for a in listing.authors)
                listing.search_text = search_text(listing)
                listing.position = position
                listing.document = document(listing)
                changed.append(listing)
        BookListing.objects.bulk_update(
            changed, ["authors", "author_names", "search_text", "position", "document"]
        )
        return [listing.book_id for listing in changed]
