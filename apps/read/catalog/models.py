import re

from django.core.files.storage import default_storage
from django.db import models
from django.db.models.expressions import RawSQL


class Availability(models.TextChoices):
    IN_STOCK = "in_stock", "In stock"
    LOW = "low", "Only a few left"
    BACKORDER = "backorder", "Available to order"
    OUT = "out", "Out of stock"
    DISCONTINUED = "discontinued", "No longer sold"


LOW_STOCK = 5
# The languages and formats the catalog sells, as its events name them.
LANGUAGES = [
    ("en", "English"),
    ("fr", "French"),
    ("de", "German"),
    ("es", "Spanish"),
    ("it", "Italian"),
    ("nl", "Dutch"),
    ("pt", "Portuguese"),
]
FORMATS = [
    ("hardcover", "Hardcover"),
    ("paperback", "Paperback"),
    ("ebook", "E-book"),
    ("audiobook", "Audiobook"),
]


def availability_of(*, on_hand: int, allow_backorder: bool, discontinued: bool) -> str:
    if discontinued:
        return Availability.DISCONTINUED
    if on_hand > LOW_STOCK:
        return Availability.IN_STOCK
    if on_hand > 0:
        return Availability.LOW
    return Availability.BACKORDER if allow_backorder else Availability.OUT


# Best-selling first, then by id: units sold and id as one number, so that "the 5,000 most
# popular books" is a range of the index on it, which a scan stops at. (PostgreSQL 15 stops a
# scan of a two-column index only on its first column, and most books sell alike.) Ids stay
# below 2^32, units sold below 2^31: the number fits a bigint.
POPULARITY = RawSQL("units_sold * 4294967296 - book_id", [], output_field=models.BigIntegerField())


class BookListing(models.Model):
    """One wide row per book: everything a catalog page or the books API shows, with no join."""

    book_id = models.BigIntegerField(primary_key=True)
    title = models.CharField(max_length=300)
    subtitle = models.CharField(max_length=300, blank=True)
    isbn = models.CharField(max_length=13)  # unique: Meta.constraints
    description = models.TextField(blank=True)
    format = models.CharField(max_length=20)
    # Listing v2 (docs/upgrades.md): filled by the blue-green rebuild, 'en' until it switches.
    language = models.CharField(max_length=2, choices=LANGUAGES, default="en")
    published_on = models.DateField(null=True, blank=True)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    authors = models.JSONField(default=list, help_text='[{"id": 1, "name": "..."}] in order.')
    author_names = models.CharField(max_length=1000, blank=True)
    discontinued = models.BooleanField(default=False)
    # The cover's sizes, as names in the file storage; empty without a cover.
    cover_small = models.CharField(max_length=200, blank=True, default="")
    cover_large = models.CharField(max_length=200, blank=True, default="")
    # Title, subtitle, authors and ISBN in one text, for full-text search (selectors.py).
    search_text = models.TextField(blank=True)
    quantity_available = models.IntegerField(default=0)
    units_sold = models.IntegerField(default=0, help_text="Units in orders not cancelled.")
    allow_backorder = models.BooleanField(default=False)
    availability = models.CharField(
        max_length=20, choices=Availability.choices, default=Availability.OUT
    )
    # Position of the last event applied to this row: how fresh the row is.
    position = models.BigIntegerField()
    # The row as the books API shows it, as JSON text (documents.py); empty until written by
    # read model version 3.
    document = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["title", "book_id"]
        indexes = [
            models.Index(fields=["title", "book_id"], name="listing_title_id"),
            models.Index(fields=["price"], name="listing_price"),
            models.Index(fields=["availability", "title", "book_id"], name="listing_availability"),
            models.Index(fields=["format", "title", "book_id"], name="listing_format"),
            models.Index(fields=["language", "title", "book_id"], name="listing_language"),
            models.Index(fields=["published_on"], name="listing_published"),
            # Suggestions and a search's tiers take the best-selling matches: with this order
            # at hand PostgreSQL stops at the first of a common word rather than sorting all
            # its matches. Ties by id, not title: matches of a word cluster in title order, and
            # a scan in that order passed 167,000 rows before finding "hollow" at a million
            # books. One number, not two columns: a range of it bounds a walk (POPULARITY).
            models.Index(POPULARITY.desc(), name="listing_popular"),
        ]
        constraints = [
            # Not `unique=True`, which on PostgreSQL also makes an index for LIKE 'prefix%' that
            # no query here uses, written on every change of a row (0021).
            models.UniqueConstraint(fields=["isbn"], name="listing_isbn_unique"),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def cover(self) -> dict[str, str] | None:
        """The cover's URLs by size, or None."""
        if not self.cover_small:
            return None
        return {
            "small": default_storage.url(self.cover_small),
            "large": default_storage.url(self.cover_large),
        }


# What the vocabulary holds: letters only, three or more (shorter words are not worth
# correcting), as long as the column allows.
VOCABULARY_WORD = re.compile(r"[^\W\d_]{3,100}")


class SearchWord(models.Model):
    """A word of some book's title, subtitle or author's name, once: what a misspelt search is
    corrected to (selectors.book_search). The vocabulary grows far slower than the catalog, so
    finding the word nearest a misspelling costs about the same at a million books as at ten
    thousand, where comparing the misspelling with every title did not. Words are added, never
    removed: one that no book has any more corrects a search to nothing."""

    word = models.CharField(primary_key=True, max_length=100)

    def __str__(self) -> str:
        return self.word


class AuthorName(models.Model):
    """An author credited on some book, once, by the name the books show: what the search box
    suggests for people (selectors.book_suggestions). An author of many books matched their
    text on every one of them in the listing (`ada abara`: 3,297 rows at a million books);
    here once. Added with their first book, renamed with AuthorRenamed, never removed."""

    author_id = models.BigIntegerField(primary_key=True)
    name = models.CharField(max_length=200)

    def __str__(self) -> str:
        return self.name
