"""What the benchmark server serves: the project, plus the variants it is compared with."""

from django.http import JsonResponse
from django.urls import include, path
from rest_framework.routers import SimpleRouter

from apps.read.catalog.api import BookViewSet
from bench.naive import NaiveBookViewSet

CONSTANT = {"id": 1, "title": "A constant body", "price": "10.00", "authors": ["Nobody"]}


class UncachedBookViewSet(BookViewSet):
    """The read model without the Redis cache in front of it."""

    cache_enabled = False


def constant(request):
    """The framework's ceiling: the same middleware, no database, a fixed JSON body."""
    return JsonResponse(CONSTANT)


router = SimpleRouter()
router.register("naive/books", NaiveBookViewSet, basename="naive-book")
router.register("uncached/books", UncachedBookViewSet, basename="uncached-book")

urlpatterns = [
    path("bench/constant/", constant),
    path("bench/", include(router.urls)),
    path("", include("config.urls")),
]
