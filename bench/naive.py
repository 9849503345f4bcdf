"""The naive baseline: the catalog API people write without CQRS. A plain DRF viewset over the
write models, nested serializers for authors and stock, page-number pagination, SearchFilter.
It is given its best shot: related rows are fetched with select/prefetch_related (no N+1), and
the benchmark adds the index its ordering needs."""

import django_filters
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import serializers, viewsets
from rest_framework.filters import SearchFilter
from rest_framework.pagination import PageNumberPagination

from apps.write.catalog.models import Author, Book
from apps.write.inventory.models import StockItem


class AuthorSerializer(serializers.ModelSerializer):
    class Meta:
        model = Author
        fields = ["id", "name"]


class StockSerializer(serializers.ModelSerializer):
    class Meta:
        model = StockItem
        fields = ["on_hand", "allow_backorder"]


class NaiveBookSerializer(serializers.ModelSerializer):
    authors = AuthorSerializer(many=True, read_only=True)
    stock = StockSerializer(read_only=True)

    class Meta:
        model = Book
        fields = [
            "id",
            "title",
            "subtitle",
            "isbn",
            "description",
            "format",
            "published_on",
            "price",
            "discontinued",
            "authors",
            "stock",
        ]


class NaiveBookFilter(django_filters.FilterSet):
    price_min = django_filters.NumberFilter(field_name="price", lookup_expr="gte")
    price_max = django_filters.NumberFilter(field_name="price", lookup_expr="lte")
    author = django_filters.NumberFilter(field_name="authors__id")
    availability = django_filters.ChoiceFilter(
        choices=[("in_stock", "In stock")], method="in_stock"
    )

    class Meta:
        model = Book
        fields = ["format"]

    def in_stock(self, queryset, name, value):
        return queryset.filter(stock__on_hand__gt=0)


class NaivePagination(PageNumberPagination):
    page_size = 50


class NaiveBookViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = (
        Book.objects.select_related("stock").prefetch_related("authors").order_by("title", "id")
    )
    serializer_class = NaiveBookSerializer
    pagination_class = NaivePagination
    permission_classes = []
    filter_backends = [DjangoFilterBackend, SearchFilter]
    filterset_class = NaiveBookFilter
    search_fields = ["title", "authors__name"]
