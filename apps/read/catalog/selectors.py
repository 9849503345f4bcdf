from django.db.models import QuerySet

from apps.read.catalog.models import BookListing


def book_listings() -> QuerySet[BookListing]:
    return BookListing.objects.all()


def book_listing_get(*, book_id: int) -> BookListing:
    return BookListing.objects.get(book_id=book_id)
