import django_filters
from django.db.models import QuerySet

from apps.read.catalog import selectors
from apps.read.catalog.models import FORMATS, LANGUAGES, Availability, BookListing


class BookListingFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search title, author, ISBN")
    author = django_filters.NumberFilter(method="by_author", label="Author id")
    price_min = django_filters.NumberFilter(field_name="price", lookup_expr="gte", label="From $")
    price_max = django_filters.NumberFilter(field_name="price", lookup_expr="lte", label="To $")
    availability = django_filters.ChoiceFilter(choices=Availability.choices)
    format = django_filters.ChoiceFilter(choices=FORMATS)
    language = django_filters.ChoiceFilter(choices=LANGUAGES)
    published_after = django_filters.DateFilter(field_name="published_on", lookup_expr="gte")
    published_before = django_filters.DateFilter(field_name="published_on", lookup_expr="lte")

    class Meta:
        model = BookListing
        fields: list[str] = []

    def search(self, queryset, name, value):
        return selectors.book_search(queryset, q=value)

    def unsearched(self) -> QuerySet[BookListing]:
        """The books every filter but the search leaves (for selectors.ranked_page, which
        searches a tier at a time); call after `is_valid()`."""
        books = self.queryset
        for name, value in self.form.cleaned_data.items():
            if name != "q":
                books = self.filters[name].filter(books, value)
        return books

    def by_author(self, queryset, name, value):
        return selectors.books_by_author(queryset, author_id=int(value))
