from typing import Any

from rest_framework import serializers

from apps.cqrs.api import CommandResultSerializer, CommandView
from apps.write.catalog import services
from apps.write.catalog.models import Book
from apps.write.catalog.validators import validate_isbn13

PRICE: dict[str, Any] = {"max_digits": 7, "decimal_places": 2, "min_value": 0}


class AuthorAddInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)


class AuthorAddResultSerializer(CommandResultSerializer):
    author_id = serializers.IntegerField()


class AuthorAddView(CommandView):
    """Add an author to the catalog (staff)."""

    serializer_class = AuthorAddInputSerializer
    result_serializer_class = AuthorAddResultSerializer

    def execute(self, data):
        author = services.author_add(actor=self.actor, **data)
        return {"author_id": author.pk}


class BookAddInputSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=300)
    subtitle = serializers.CharField(max_length=300, required=False, default="")
    isbn = serializers.CharField(max_length=17, validators=[validate_isbn13])
    author_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), min_length=1, max_length=20
    )
    price = serializers.DecimalField(**PRICE)
    description = serializers.CharField(required=False, default="", allow_blank=True)
    format = serializers.ChoiceField(choices=Book.Format.choices, default=Book.Format.PAPERBACK)
    language = serializers.ChoiceField(choices=Book.Language.choices, default=Book.Language.ENGLISH)
    published_on = serializers.DateField(required=False, allow_null=True, default=None)


class BookResultSerializer(CommandResultSerializer):
    book_id = serializers.IntegerField()


class BookCommandView(CommandView):
    """A staff command on an existing book: answers 200 with its id."""

    result_serializer_class = BookResultSerializer
    success_status = 200


class BookAddView(CommandView):
    """Add a book to the catalog (staff)."""

    serializer_class = BookAddInputSerializer
    result_serializer_class = BookResultSerializer

    def execute(self, data):
        book = services.book_add(actor=self.actor, **data)
        return {"book_id": book.pk}


class BookChangePriceInputSerializer(serializers.Serializer):
    book_id = serializers.IntegerField(min_value=1)
    price = serializers.DecimalField(**PRICE)


class BookChangePriceView(BookCommandView):
    """Change a book's price (staff)."""

    serializer_class = BookChangePriceInputSerializer

    def execute(self, data):
        book = services.book_change_price(actor=self.actor, **data)
        return {"book_id": book.pk}


class AuthorRenameInputSerializer(serializers.Serializer):
    author_id = serializers.IntegerField(min_value=1)
    name = serializers.CharField(max_length=200)


class AuthorRenameView(CommandView):
    """Correct an author's name (staff)."""

    serializer_class = AuthorRenameInputSerializer
    result_serializer_class = AuthorAddResultSerializer
    success_status = 200

    def execute(self, data):
        author = services.author_rename(actor=self.actor, **data)
        return {"author_id": author.pk}


class BookChangeDetailsInputSerializer(serializers.Serializer):
    book_id = serializers.IntegerField(min_value=1)
    title = serializers.CharField(max_length=300, required=False)
    subtitle = serializers.CharField(max_length=300, required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True)
    format = serializers.ChoiceField(choices=Book.Format.choices, required=False)
    language = serializers.ChoiceField(choices=Book.Language.choices, required=False)
    published_on = serializers.DateField(required=False, allow_null=True)


class BookChangeDetailsView(BookCommandView):
    """Change a book's title, subtitle, description, format, language or publication date
    (staff)."""

    serializer_class = BookChangeDetailsInputSerializer

    def execute(self, data):
        book = services.book_change_details(actor=self.actor, **data)
        return {"book_id": book.pk}


class BookIdInputSerializer(serializers.Serializer):
    book_id = serializers.IntegerField(min_value=1)


class BookDiscontinueView(BookCommandView):
    """Stop selling a book (staff)."""

    serializer_class = BookIdInputSerializer

    def execute(self, data):
        return {"book_id": services.book_discontinue(actor=self.actor, **data).pk}


class BookReinstateView(BookDiscontinueView):
    """Sell a discontinued book again (staff)."""

    def execute(self, data):
        return {"book_id": services.book_reinstate(actor=self.actor, **data).pk}


# (route, view, name) for config/urls.py, which mounts them under /api/commands/.
commands = [
    ("add-author/", AuthorAddView, "add-author"),
    ("add-book/", BookAddView, "add-book"),
    ("change-price/", BookChangePriceView, "change-price"),
    ("rename-author/", AuthorRenameView, "rename-author"),
    ("change-book-details/", BookChangeDetailsView, "change-book-details"),
    ("discontinue-book/", BookDiscontinueView, "discontinue-book"),
    ("reinstate-book/", BookReinstateView, "reinstate-book"),
]
