from django.contrib import admin

from apps.cqrs.admin import ReadOnlyAdmin
from apps.write.catalog.models import Author, Book

# Read-only until the catalog's admin forms call the command services (an edit here would change
# the write model behind the event log's back).


@admin.register(Author)
class AuthorAdmin(ReadOnlyAdmin):
    list_display = ("name", "created_at")
    search_fields = ("name",)


@admin.register(Book)
class BookAdmin(ReadOnlyAdmin):
    list_display = ("title", "isbn", "format", "price", "discontinued")
    list_filter = ("format", "discontinued")
    search_fields = ("title", "=isbn")
