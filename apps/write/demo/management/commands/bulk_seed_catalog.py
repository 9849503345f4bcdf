"""Add a large catalog quickly, for benchmarks: the rows and events `catalog.author_add`,
`catalog.book_add` and `inventory.stock_receive` would write, in COPY batches instead of one
command per book. PostgreSQL only. Read models are not touched here; projectors (or
`rebuild_read_models`) build them from the events like any others."""

import random
from datetime import date, timedelta
from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone
from tqdm import tqdm

from apps.contracts.catalog import AuthorAdded, BookAdded, Credit
from apps.contracts.inventory import StockReceived
from apps.cqrs.bulk import copy_rows
from apps.cqrs.events import Event
from apps.cqrs.log import copy_new_aggregates
from apps.write.catalog.models import Author, Book, BookAuthor
from apps.write.demo.words import FIRST, LAST, book_text, isbn_for
from apps.write.inventory.models import StockItem

BATCH = 5_000


def _reserve_ids(model, count: int) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [model._meta.db_table, count],
        )
        return [row[0] for row in cursor.fetchall()]


def _copy(model, columns: list[str], rows) -> None:
    copy_rows(using="default", table=model._meta.db_table, columns=columns, rows=rows)


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--books", type=int, required=True)
        parser.add_argument("--authors", type=int, default=None, help="Default: books / 20.")
        parser.add_argument("--seed", type=int, default=1)

    def handle(self, *args, books, authors, seed, **options):
        if connection.vendor != "postgresql":
            raise CommandError("bulk_seed_catalog needs PostgreSQL (it writes with COPY).")
        if books < 1 or (authors is not None and authors < 1):
            raise CommandError("--books and --authors must be 1 or more.")
        rng = random.Random(seed)
        quiet = options.get("verbosity", 1) == 0
        with transaction.atomic():
            author_ids = self.add_authors(rng, authors or max(books // 20, 1))
        added = 0
        with tqdm(total=books, desc="books", unit="book", disable=quiet) as bar:
            while added < books:
                size = min(BATCH, books - added)
                with transaction.atomic():
                    self.add_books(rng, size, author_ids)
                added += size
                bar.update(size)
        self.stdout.write(f"Added {len(author_ids)} authors and {books} books in bulk.")

    def add_authors(self, rng, count: int) -> dict[int, str]:
        ids = _reserve_ids(Author, count)
        names = {i: f"{rng.choice(FIRST)} {rng.choice(LAST)}" for i in ids}
        now = timezone.now()
        _copy(Author, ["id", "name", "created_at"], ((i, n, now) for i, n in names.items()))
        copy_new_aggregates(
            (AuthorAdded(author_id=i, name=n), "catalog.author_add") for i, n in names.items()
        )
        return names

    def add_books(self, rng, count: int, authors: dict[int, str]) -> None:
        ids, author_ids, now = _reserve_ids(Book, count), list(authors), timezone.now()
        # Rows for COPY, in the tables' column order.
        books: list[tuple[object, ...]] = []
        credits: list[tuple[object, ...]] = []
        stock: list[tuple[object, ...]] = []
        events: list[tuple[Event, str]] = []
        for book_id in ids:
            text = book_text(rng)
            book = {
                # Unique, so that deep pages of a million titles page by title alone.
                "title": f"{text['title']}, Book {book_id}",
                "subtitle": text["subtitle"],
                # 979-5…: a range of its own, apart from the demo seed's 979-0…
                "isbn": isbn_for(500_000_000 + book_id),
                "description": text["description"],
                "format": rng.choice(Book.Format.values),
                "language": rng.choice(["en", "en", "en", "fr", "de", "es"]),
                "published_on": date(2024, 1, 1) - timedelta(days=rng.randrange(0, 15000)),
                "price": Decimal(rng.randrange(499, 5999)).scaleb(-2),  # 26.80, as services write
            }
            credited = rng.sample(author_ids, k=min(len(author_ids), rng.choice([1, 1, 2])))
            quantity = rng.choice([0, 3, 10, 25, 60])
            books.append((book_id, *book.values(), False, now, now))
            credits.extend((book_id, a, i) for i, a in enumerate(credited))
            stock.append((book_id, quantity, False, now))
            events.append(
                (
                    BookAdded(
                        book_id=book_id,
                        authors=[Credit(id=a, name=authors[a]) for a in credited],
                        **book,
                    ),
                    "catalog.book_add",
                )
            )
            if quantity:
                receipt = StockReceived(
                    book_id=book_id, quantity=quantity, on_hand=quantity, note=""
                )
                events.append((receipt, "inventory.stock_receive"))
        _copy(Book, ["id", *book, "discontinued", "created_at", "updated_at"], books)
        _copy(BookAuthor, ["book_id", "author_id", "position"], credits)
        _copy(StockItem, ["book_id", "on_hand", "allow_backorder", "updated_at"], stock)
        copy_new_aggregates(events)
