"""Catalog commands. Each validates, changes the catalog tables and records what happened, in one
transaction (@command)."""

import datetime
from decimal import Decimal
from typing import cast

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError

from apps.contracts.catalog import (
    AuthorAdded,
    AuthorRenamed,
    BookAdded,
    BookCoverChanged,
    BookDetails,
    BookDetailsChanged,
    BookDiscontinued,
    BookReinstated,
    Credit,
    PriceChanged,
)
from apps.cqrs.commands import command
from apps.cqrs.log import record
from apps.write.catalog.models import Author, Book, BookAuthor
from apps.write.catalog.validators import normalize_isbn, validate_isbn13

MAX_PRICE = Decimal("99999.99")


def _validate_price(price: Decimal, field: str = "price") -> Decimal:
    if not isinstance(price, Decimal) or not price.is_finite():
        raise ValidationError({field: "Enter a price as a decimal number."})
    if price < 0:
        raise ValidationError({field: "A price cannot be negative."})
    if price > MAX_PRICE:
        raise ValidationError({field: f"A price cannot exceed {MAX_PRICE}."})
    if -price.as_tuple().exponent > 2:  # type: ignore[operator]  # finite: an int
        raise ValidationError({field: "A price has at most two decimal places."})
    return price.quantize(Decimal("0.01"))


@command("catalog.author_add")
def author_add(*, actor: AbstractBaseUser | None, name: str) -> Author:
    name = name.strip()
    if not name:
        raise ValidationError({"name": "An author needs a name."})
    author = Author.objects.create(name=name)
    record(AuthorAdded(author_id=author.pk, name=author.name))
    return author


@command("catalog.author_rename")
def author_rename(*, actor: AbstractBaseUser | None, author_id: int, name: str) -> Author:
    name = name.strip()
    if not name:
        raise ValidationError({"name": "An author needs a name."})
    author = Author.objects.select_for_update(no_key=True).get(pk=author_id)
    if author.name != name:
        old_name, author.name = author.name, name
        author.save(update_fields=["name"])
        record(AuthorRenamed(author_id=author.pk, old_name=old_name, name=name))
    return author


@command("catalog.book_add")
def book_add(
    *,
    actor: AbstractBaseUser | None,
    title: str,
    isbn: str,
    author_ids: list[int],
    price: Decimal,
    subtitle: str = "",
    description: str = "",
    format: str = Book.Format.PAPERBACK,
    language: str = Book.Language.ENGLISH,
    published_on: datetime.date | None = None,
) -> Book:
    errors: dict[str, list[str]] = {}
    title = title.strip()
    if not title:
        errors.setdefault("title", []).append("A book needs a title.")
    try:
        validate_isbn13(isbn)
    except ValidationError as exc:
        errors.setdefault("isbn", []).extend(exc.messages)
    isbn = normalize_isbn(isbn)
    if "isbn" not in errors and Book.objects.filter(isbn=isbn).exists():
        errors.setdefault("isbn", []).append("A book with this ISBN is already in the catalog.")
    try:
        price = _validate_price(price)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if format not in Book.Format.values:
        errors.setdefault("format", []).append(f"Choose one of: {', '.join(Book.Format.values)}.")
    if language not in Book.Language.values:
        errors.setdefault("language", []).append(
            f"Choose one of: {', '.join(Book.Language.values)}."
        )
    if not author_ids:
        errors.setdefault("author_ids", []).append("A book needs at least one author.")
    if len(set(author_ids)) != len(author_ids):
        errors.setdefault("author_ids", []).append("An author is listed twice.")
    authors = Author.objects.in_bulk(author_ids)
    missing = [str(i) for i in author_ids if i not in authors]
    if missing:
        errors.setdefault("author_ids", []).append(f"Unknown author id(s): {', '.join(missing)}.")
    if errors:
        raise ValidationError(errors)

    book = Book.objects.create(
        title=title,
        subtitle=subtitle.strip(),
        isbn=isbn,
        description=description,
        format=format,
        language=language,
        published_on=published_on,
        price=price,
    )
    BookAuthor.objects.bulk_create(
        BookAuthor(book=book, author_id=author_id, position=i)
        for i, author_id in enumerate(author_ids)
    )
    record(
        BookAdded(
            book_id=book.pk,
            title=book.title,
            subtitle=book.subtitle,
            isbn=book.isbn,
            description=book.description,
            format=book.format,
            language=book.language,
            published_on=book.published_on,
            price=book.price,
            authors=[Credit(id=a, name=authors[a].name) for a in author_ids],
        )
    )
    return book


@command("catalog.book_change_price")
def book_change_price(*, actor: AbstractBaseUser | None, book_id: int, price: Decimal) -> Book:
    price = _validate_price(price)
    book = Book.objects.select_for_update(no_key=True).get(pk=book_id)
    if book.price == price:
        return book
    old_price, book.price = book.price, price
    book.save(update_fields=["price", "updated_at"])
    record(PriceChanged(book_id=book.pk, old_price=old_price, new_price=price))
    return book


EDITABLE_DETAILS = ("title", "subtitle", "description", "format", "language", "published_on")


@command("catalog.book_change_details")
def book_change_details(*, actor: AbstractBaseUser | None, book_id: int, **details) -> Book:
    """Change any of title, subtitle, description, format, language and publication date."""
    unknown = set(details) - set(EDITABLE_DETAILS)
    if unknown:
        raise ValidationError({f: "This field cannot be changed here." for f in unknown})
    if "title" in details:
        details["title"] = details["title"].strip()
        if not details["title"]:
            raise ValidationError({"title": "A book needs a title."})
    if "format" in details and details["format"] not in Book.Format.values:
        raise ValidationError({"format": f"Choose one of: {', '.join(Book.Format.values)}."})
    if "language" in details and details["language"] not in Book.Language.values:
        raise ValidationError({"language": f"Choose one of: {', '.join(Book.Language.values)}."})
    book = Book.objects.select_for_update(no_key=True).get(pk=book_id)
    changes = {f: v for f, v in details.items() if getattr(book, f) != v}
    if changes:
        for field, value in changes.items():
            setattr(book, field, value)
        book.save(update_fields=[*changes, "updated_at"])
        record(BookDetailsChanged(book_id=book.pk, changes=cast(BookDetails, changes)))
    return book


@command("catalog.book_change_cover")
def book_change_cover(
    *, actor: AbstractBaseUser | None, book_id: int, cover: dict[str, str] | None
) -> Book:
    """Show the sizes `covers.store_cover` stored as the book's cover; None removes it."""
    small, large = (cover["small"], cover["large"]) if cover else ("", "")
    if not all(name.startswith("covers/") for name in (small, large) if name):
        raise ValidationError({"cover": "Store the cover with covers.store_cover first."})
    book = Book.objects.select_for_update(no_key=True).get(pk=book_id)
    if (book.cover_small, book.cover_large) != (small, large):
        book.cover_small, book.cover_large = small, large
        book.save(update_fields=["cover_small", "cover_large", "updated_at"])
        record(BookCoverChanged(book_id=book.pk, small=small, large=large))
    return book


@command("catalog.book_discontinue")
def book_discontinue(*, actor: AbstractBaseUser | None, book_id: int) -> Book:
    book = Book.objects.select_for_update(no_key=True).get(pk=book_id)
    if not book.discontinued:
        book.discontinued = True
        book.save(update_fields=["discontinued", "updated_at"])
        record(BookDiscontinued(book_id=book.pk))
    return book


@command("catalog.book_reinstate")
def book_reinstate(*, actor: AbstractBaseUser | None, book_id: int) -> Book:
    book = Book.objects.select_for_update(no_key=True).get(pk=book_id)
    if book.discontinued:
        book.discontinued = False
        book.save(update_fields=["discontinued", "updated_at"])
        record(BookReinstated(book_id=book.pk))
    return book
