from decimal import Decimal

from django.db import models
from django.db.models import Q


class Author(models.Model):
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Book(models.Model):
    class Format(models.TextChoices):
        HARDCOVER = "hardcover", "Hardcover"
        PAPERBACK = "paperback", "Paperback"
        EBOOK = "ebook", "E-book"
        AUDIOBOOK = "audiobook", "Audiobook"

    class Language(models.TextChoices):
        # ISO 639-1, as BookAdded (v2) carries it.
        ENGLISH = "en", "English"
        FRENCH = "fr", "French"
        GERMAN = "de", "German"
        SPANISH = "es", "Spanish"
        ITALIAN = "it", "Italian"
        DUTCH = "nl", "Dutch"
        PORTUGUESE = "pt", "Portuguese"

    title = models.CharField(max_length=300)
    subtitle = models.CharField(max_length=300, blank=True)
    isbn = models.CharField("ISBN-13", max_length=13, unique=True)
    description = models.TextField(blank=True)
    format = models.CharField(max_length=20, choices=Format.choices, default=Format.PAPERBACK)
    language = models.CharField(max_length=2, choices=Language.choices, default=Language.ENGLISH)
    published_on = models.DateField(null=True, blank=True)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    authors: "models.ManyToManyField[Author, BookAuthor]" = models.ManyToManyField(
        Author, through="BookAuthor", related_name="books"
    )
    discontinued = models.BooleanField(default=False)
    # The cover's sizes in the file storage (covers.py), empty without one.
    cover_small = models.CharField(max_length=200, blank=True, editable=False, db_default="")
    cover_large = models.CharField(max_length=200, blank=True, editable=False, db_default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title"]
        constraints = [
            models.CheckConstraint(
                condition=Q(price__gte=Decimal("0")),
                name="book_price_not_negative",
                violation_error_message="A price cannot be negative.",
            ),
        ]

    def __str__(self) -> str:
        return self.title


class BookAuthor(models.Model):
    """Keeps the order in which authors are credited on the cover."""

    book = models.ForeignKey(Book, on_delete=models.CASCADE)
    author = models.ForeignKey(Author, on_delete=models.PROTECT)
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["book", "author"], name="book_author_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.author} on {self.book}"
