from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import serializers, viewsets
from rest_framework.filters import OrderingFilter
from rest_framework.pagination import CursorPagination

from apps.cqrs.api import ConsistentReadMixin
from apps.read.catalog import selectors
from apps.read.catalog.filters import BookListingFilter
from apps.read.catalog.models import BookListing


class BookListingSerializer(serializers.ModelSerializer):
    id = serializers.IntegerField(source="book_id", read_only=True)

    class Meta:
        model = BookListing
        fields = [
            "id",
            "title",
            "subtitle",
            "isbn",
            "description",
            "format",
            "published_on",
            "price",
            "authors",
            "author_names",
            "discontinued",
            "availability",
            "quantity_available",
            "allow_backorder",
            "position",
        ]


class BookCursorPagination(CursorPagination):
    # Cursor pagination seeks by (title, book_id): a deep page costs what the first one does,
    # and no request counts the whole table.
    ordering = ("title", "book_id")
    page_size = 50


class BookViewSet(ConsistentReadMixin, viewsets.ReadOnlyModelViewSet):
    """Books, from the catalog read model."""

    projector_names = ["catalog.book_listing"]
    serializer_class = BookListingSerializer
    lookup_field = "book_id"
    lookup_url_kwarg = "id"
    pagination_class = BookCursorPagination
    permission_classes = []
    filterset_class = BookListingFilter
    filter_backends = [DjangoFilterBackend, OrderingFilter]
    ordering_fields = ["title", "price", "published_on"]

    def get_queryset(self):
        return selectors.book_listings()
