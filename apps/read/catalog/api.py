import json
from typing import Any, cast

from django.core.cache import cache as django_cache
from django.core.exceptions import ValidationError
from django.db.models import Field, QuerySet
from django.http import HttpResponse, HttpResponseBase
from django.utils.cache import patch_vary_headers
from django_filters.rest_framework import DjangoFilterBackend
from django_filters.utils import translate_validation
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, NotFound
from rest_framework.filters import OrderingFilter
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param

from apps.cqrs.api import ConsistentReadMixin, add_consistency_headers
from apps.cqrs.consistency import (
    MIN_POSITION_HEADER,
    ReadConsistency,
    cached_positions,
    position_keys,
)
from apps.cqrs.replicas import on_replica
from apps.read.catalog import cache, selectors
from apps.read.catalog.documents import ROW, book_body, documents_of, page_body
from apps.read.catalog.filters import BookListingFilter
from apps.read.catalog.models import POPULARITY, BookListing


class CoverSerializer(serializers.Serializer):
    small = serializers.CharField(help_text="URL of a 160-pixel-wide JPEG.")
    large = serializers.CharField(help_text="URL of a 480-pixel-wide JPEG.")


class BookListingSerializer(serializers.ModelSerializer):
    """The shape of a book in the API, for the schema and the browsable API. Reads send the
    document the projector stored (documents.py), which has this same shape."""

    id = serializers.IntegerField(source="book_id", read_only=True)
    cover = CoverSerializer(read_only=True, allow_null=True, help_text="Null without a cover.")

    class Meta:
        model = BookListing
        fields = [
            "id",
            "title",
            "subtitle",
            "isbn",
            "description",
            "format",
            "language",
            "published_on",
            "price",
            "authors",
            "author_names",
            "discontinued",
            "cover",
            "availability",
            "quantity_available",
            "units_sold",
            "allow_backorder",
            "position",
        ]


def json_body(body: bytes) -> HttpResponse:
    """A stored JSON body as it is, varying on Accept as DRF's own responses do."""
    response = HttpResponse(body, content_type="application/json")
    patch_vary_headers(response, ["Accept"])
    return response


class SuggestionQuerySerializer(serializers.Serializer):
    # Empty or absent is nothing typed yet: no suggestions, as queries read an empty parameter.
    q = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")


class SuggestionSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["title", "author"])
    text = serializers.CharField()
    book_id = serializers.IntegerField(required=False, help_text="For a title.")
    author_id = serializers.IntegerField(required=False, help_text="For an author.")


class SuggestionsSerializer(serializers.Serializer):
    results = SuggestionSerializer(many=True)


# What a page of the whole catalog may be asked with; the paginator applies both.
PAGING_PARAMS = {"cursor", "ordering"}


class BookFilterBackend(DjangoFilterBackend):
    def filter_queryset(self, request, queryset, view):
        # Building the filter set and its form costs about a millisecond, a third of an
        # uncached read: not for a request that filters nothing.
        if request.query_params.keys() & BookListingFilter.base_filters.keys():
            return super().filter_queryset(request, queryset, view)
        return queryset


class BookOrderingFilter(OrderingFilter):
    """`units_sold` orders by popularity (`POPULARITY`: units sold, then the id, one number):
    its index serves it, and unique, a cursor finds its place by it alone. Ordered by units
    sold alone, every page sorted the whole catalog (365 ms at a million books), and most books
    sell alike, so a cursor also had to count past the ties."""

    AS_POPULARITY = {"units_sold": "popularity", "-units_sold": "-popularity"}

    def get_ordering(self, request, queryset, view):
        ordering = super().get_ordering(request, queryset, view)
        return ordering and [self.AS_POPULARITY.get(term, term) for term in ordering]

    def filter_queryset(self, request, queryset, view):
        ordering = self.get_ordering(request, queryset, view)
        return with_popularity(queryset, ordering).order_by(*ordering) if ordering else queryset


def with_popularity(books, ordering):
    """`books` able to be ordered by `ordering`."""
    if any(term.lstrip("-") == "popularity" for term in ordering):
        return books.annotate(popularity=POPULARITY)
    return books


class BookCursorPagination(CursorPagination):
    # Cursor pagination seeks by (title, book_id): a deep page costs what the first one does,
    # and no request counts the whole table.
    ordering = ("title", "book_id")
    page_size = 50

    def decode_cursor(self, request):
        """DRF's cursor, refused (404, as DRF refuses a malformed one) when its position is no
        value of the ordering's field: the cursor is the client's to forge, and a position
        such as `abc` for a price failed in the query's lookup (500)."""
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None:
            name = self.ordering[0].lstrip("-")  # the request's, or the class's for a search
            try:
                ordered_by(name).get_prep_value(cursor.position)
            except (TypeError, ValueError, ValidationError):
                raise NotFound(self.invalid_cursor_message) from None
        return cursor

    def paginate_queryset(self, queryset, request, view=None):
        """Rows as dicts of what is sent and the one column the cursor takes its position
        from (the ordering's first): no model per row, and no other column converted."""
        ordering = self.get_ordering(request, queryset, view)
        if "popularity" not in queryset.query.annotations:
            queryset = with_popularity(queryset, ordering)
        position = ordering[0].lstrip("-")
        rows = queryset.values(*dict.fromkeys((*ROW, position)))
        return super().paginate_queryset(rows, request, view)

    def paginate_catalog(self, books: QuerySet, request: Request, view=None) -> list | None:
        """A page of `books`, the whole catalog unfiltered, as `paginate_queryset` gives it,
        its rows read by `selectors.catalog_page` (DRF's paginator asks `CatalogRows` what it
        would ask the query set)."""
        catalog = cast(QuerySet, CatalogRows(books.db))
        return CursorPagination.paginate_queryset(self, catalog, request, view)


class CatalogRows:
    """The whole catalog as DRF's cursor paginator reads it: ordered, past a position, and
    sliced, the slice being a list of rows (`selectors.catalog_page`)."""

    def __init__(self, db: str, ordering: tuple[str, ...] = (), after: tuple | None = None):
        self.db, self.ordering, self.after = db, ordering, after

    def order_by(self, *ordering: str) -> "CatalogRows":
        return CatalogRows(self.db, ordering, self.after)

    def filter(self, **lookup: Any) -> "CatalogRows":
        ((key, value),) = lookup.items()  # DRF's `<field>__gt` or `<field>__lt`
        name, _, kind = key.rpartition("__")
        # As the ORM would convert it; decode_cursor has refused a value that does not convert.
        return CatalogRows(
            self.db, self.ordering, (name, kind, ordered_by(name).get_prep_value(value))
        )

    def __getitem__(self, part: slice) -> list[dict[str, Any]]:
        return selectors.catalog_page(
            using=self.db,
            ordering=self.ordering,
            after=self.after,
            offset=part.start,
            limit=part.stop - part.start,
        )


def ordered_by(name: str) -> Field:
    """The field a page may be ordered by: popularity (`POPULARITY`) or a column of
    `ordering_fields`."""
    if name == "popularity":
        return POPULARITY.output_field
    return cast(Field, BookListing._meta.get_field(name))


class SearchPagination(BookCursorPagination):
    """A search's pages in relevance order (selectors.ranked_page): the cursor holds how many
    results came before, as DRF's cursors hold an offset."""

    # How far a client may page into one search; each page walks the results before it.
    offset_cutoff = 10_000

    def paginate_search(self, request: Request, books, *, query: selectors.SearchQuery) -> list:
        self.base_url = request.build_absolute_uri()
        cursor = self.decode_cursor(request)  # NotFound for one that is not ours
        self.start = cursor.offset if cursor else 0
        rows = selectors.ranked_page(books, query=query, start=self.start, size=self.page_size + 1)
        self.more = len(rows) > self.page_size and self.start + self.page_size < self.offset_cutoff
        return rows[: self.page_size]

    def link(self, start: int) -> str:
        if start == 0:
            return remove_query_param(self.base_url or "", self.cursor_query_param)
        return self.encode_cursor(Cursor(offset=start, reverse=False, position=None))

    def get_next_link(self) -> str | None:
        return self.link(self.start + self.page_size) if self.more else None

    def get_previous_link(self) -> str | None:
        return self.link(max(0, self.start - self.page_size)) if self.start else None


class BookViewSet(ConsistentReadMixin, viewsets.ReadOnlyModelViewSet):
    """Books, from the catalog read model."""

    projector_names = ["catalog.book_listing"]
    serializer_class = BookListingSerializer
    lookup_field = "book_id"
    lookup_url_kwarg = "id"
    pagination_class = BookCursorPagination
    permission_classes = [AllowAny]  # also documents that auth is optional
    filterset_class = BookListingFilter
    filter_backends = [BookFilterBackend, BookOrderingFilter]
    ordering_fields = ["title", "price", "published_on", "units_sold"]

    def get_queryset(self):
        return selectors.book_listings()

    # The benchmarks turn it off to measure the read model alone (bench/urls.py).
    cache_enabled = True

    @extend_schema(
        parameters=[SuggestionQuerySerializer], responses=SuggestionsSerializer, filters=False
    )
    @action(detail=False, methods=["get"], pagination_class=None, filter_backends=[])
    def suggestions(self, request, format=None):
        """Titles and authors for a search box as the shopper types: at most 10 that contain
        `q` (nothing for a `q` without three letters or digits in a row)."""
        query = SuggestionQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response({"results": selectors.book_suggestions(q=query.validated_data["q"])})

    def uses_cache(self) -> bool:
        # A client waiting for its own write reads the tables: the checkpoint it waited for
        # becomes visible a moment before the projector refreshes the cache. A request that
        # reads a replica reads it, not the primary's newer entries (docs/decisions/0007).
        return self.cache_enabled and self.min_position is None and not on_replica()

    def dispatch(self, request, *args, **kwargs):
        # DRF's request cycle (authentication, negotiation, throttles, rendering) costs more
        # than a cache hit or a page of stored documents, so plain JSON reads of a book, of a
        # cached list page, or of a page of the whole catalog (cursor and ordering, no filter)
        # are answered before it. Anything else goes the usual way, as does any error. (This
        # viewset lets anyone read and throttles no one; a permission or throttle added to it
        # must be checked here too.)
        return self.early_answer(request, kwargs) or super().dispatch(request, *args, **kwargs)

    def early_answer(self, request, kwargs) -> HttpResponse | None:
        accept = request.headers.get("Accept", "")
        if (
            on_replica()  # the cached positions are the primary's
            or request.method != "GET"
            or "Authorization" in request.headers  # DRF must check the token
            or MIN_POSITION_HEADER in request.headers
            or "min_position" in request.GET  # waits read the tables (`uses_cache`)
            or kwargs.get("format") not in (None, "json")
            or not (accept in ("", "*/*") or "application/json" in accept)
        ):
            return None
        also = position_keys(self.projector_names)
        action = self.action_map.get("get")
        book_id = str(kwargs.get(self.lookup_url_kwarg, ""))
        body: bytes | None = None
        tags: tuple = ()
        if action == "list":
            plain = not (request.GET.keys() - PAGING_PARAMS)
            digest = cache.list_digest(request.GET.dict()) if self.cache_enabled else None
            if digest:
                body, tags, values = cache.find_list(digest, also=also)
            elif plain:
                values = django_cache.get_many(also)
            else:
                return None
        elif action == "retrieve" and book_id.isdigit():
            if self.cache_enabled:
                body, values = cache.find_book(int(book_id), also=also)
            else:
                values = django_cache.get_many(also)
        else:
            return None
        # Positions read before the row: the row is at least as fresh as they say.
        position, head = cached_positions(self.projector_names, values)
        if position is None:
            return None
        if body is None and action == "retrieve":
            if (body := self.loaded_book(int(book_id), keep=self.cache_enabled)) is None:
                return None  # DRF's 404
        elif body is None:
            if not plain:
                return None
            try:
                body = self.loaded_page(Request(request), digest=digest or None, tags=tags)
            except APIException:  # a bad cursor or ordering: DRF's answer
                return None
        response = json_body(body)
        response["Allow"] = ", ".join(self.allowed_methods)
        add_consistency_headers(
            response,
            ReadConsistency(
                position=position, head=max(head, position), waited=0.0, satisfied=True
            ),
        )
        return response

    def body_response(self, body: bytes) -> HttpResponseBase:
        """A JSON body made of stored documents: sent as it is, or parsed again for the
        browsable API."""
        if self.request.accepted_renderer.format == "json":
            return json_body(body)
        return Response(json.loads(body))

    def retrieve(self, request, *args, **kwargs):
        book_id = str(self.kwargs[self.lookup_url_kwarg])
        cacheable = self.uses_cache() and book_id.isdigit()
        if cacheable and (body := cache.find_book(int(book_id))[0]) is not None:
            return self.body_response(body)
        # The book by its id alone: list filters sent along do not hide it.
        body = self.loaded_book(int(book_id), keep=cacheable) if book_id.isdigit() else None
        if body is None:
            raise NotFound()
        return self.body_response(body)

    def list(self, request, *args, **kwargs):
        digest = cache.list_digest(request.query_params.dict()) if self.uses_cache() else None
        tags: tuple = ()
        if digest is not None:
            body, tags, _values = cache.find_list(digest)
            if body is not None:
                return self.body_response(body)
        return self.body_response(self.loaded_page(request, digest=digest, tags=tags))

    @staticmethod
    def loaded_book(book_id: int, *, keep: bool) -> bytes | None:
        """A book's stored document from the table (None: no such book), added to the cache
        when `keep`."""
        body = book_body(book_id)
        if body is not None and keep:
            cache.add_book(book_id, body)
        return body

    def loaded_page(self, request: Request, *, digest: str | None, tags: tuple) -> bytes:
        """A page from the table, stored under `digest` when it has one (`cache.store_list`)."""
        body = self.page(request)
        if digest is not None:
            cache.store_list(digest, body, tags, search="q" in request.query_params)
        return body

    def page(self, request: Request) -> bytes:
        """A page of the list the request asks for, made of the stored documents."""
        books = self.get_queryset()
        params = request.query_params
        paginator: BookCursorPagination
        rows: list | None
        if params.get("q", "").strip() and not params.get("ordering"):
            # Most relevant first, a tier at a time (selectors.ranked_page).
            filters = BookListingFilter(params, queryset=books, request=request)
            if not filters.is_valid():
                raise translate_validation(filters.errors)
            unsearched = filters.unsearched()
            query = selectors.search_query(unsearched, q=filters.form.cleaned_data["q"])
            paginator = SearchPagination()
            rows = paginator.paginate_search(request, unsearched.values(*ROW), query=query)
        else:
            paginator = BookCursorPagination()
            if params.keys() - PAGING_PARAMS:  # the paginator orders them
                rows = paginator.paginate_queryset(self.filter_queryset(books), request, view=self)
            else:  # the whole catalog
                rows = paginator.paginate_catalog(books, request, view=self)
        return page_body(
            next_link=paginator.get_next_link(),
            previous_link=paginator.get_previous_link(),
            documents=documents_of(rows or []),
        )
