"""Nothing a page needs comes from the internet: the API docs' Swagger UI is served from the
project's static files, and every page has a favicon and a description."""

import re

import pytest
from django.test import Client

from apps.cqrs import runtime
from apps.cqrs.projectors import registry
from tests.factories import stocked_book

pytestmark = pytest.mark.django_db(databases=["default", "read"])
EXTERNAL = re.compile(r"""(?:src|href)=["']?(?:https?:)?//""")


def test_the_api_docs_load_nothing_from_another_site():
    page = Client().get("/api/docs/").content.decode()
    assert "swagger-ui" in page
    assert not EXTERNAL.search(page), EXTERNAL.search(page)
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in page


def test_pages_have_a_favicon_and_a_description():
    book = stocked_book(title="Kindred", description="A novel of time travel.")
    runtime.catch_up(registry.get("catalog.book_listing"))
    for url in ["/", "/books/", f"/books/{book.pk}/"]:
        page = Client().get(url).content.decode()
        assert '<link rel="icon" href="/static/favicon.svg"' in page, url
        assert '<meta name="description" content="' in page, url
        assert not EXTERNAL.search(page), url
    detail = Client().get(f"/books/{book.pk}/").content.decode()
    assert "Kindred by" in detail
