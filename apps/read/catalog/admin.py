from django.contrib import admin

from apps.cqrs.admin import ReadOnlyAdmin
from apps.read.catalog.models import BookListing


@admin.register(BookListing)
class BookListingAdmin(ReadOnlyAdmin):
    """The read model as the shop serves it; its projector owns it."""

    list_display = ("title", "author_names", "format", "price", "position")
    search_fields = ("title", "=isbn")
