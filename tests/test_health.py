"""/healthz and /readyz on the test stack's real PostgreSQL and Redis (the dependencies are
broken for real in tests/faults/test_readiness.py)."""

import pytest
from django.test import Client

from apps.cqrs import runtime
from apps.cqrs.models import ProjectorCheckpoint
from apps.cqrs.projectors import registry
from tests.factories import stocked_book

pytestmark = pytest.mark.django_db(databases=["default", "read"])


def catch_everything_up() -> None:
    for projector in registry.all():
        runtime.catch_up(projector)


def test_liveness_does_no_io(django_assert_num_queries):
    with django_assert_num_queries(0):
        response = Client().get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_ready_when_every_dependency_answers_and_projectors_keep_up():
    stocked_book()
    catch_everything_up()
    response = Client().get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json() == {
        "status": "ok",
        "checks": {
            "write_database": "ok",
            "read_database": "ok",
            "cache": "ok",
            "broker": "ok",
            "projectors": "ok",
        },
    }


def test_not_ready_when_a_projector_is_stopped_at_a_failure():
    stocked_book()
    catch_everything_up()
    ProjectorCheckpoint.objects.filter(name="catalog.book_listing").update(failed_position=1)
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["projectors"] == "catalog.book_listing failed"
    assert response.json()["status"] == "unavailable"


def test_not_ready_when_a_projector_lags_past_the_bound(settings):
    catch_everything_up()
    stocked_book()  # not projected
    settings.READY_MAX_LAG_SECONDS = 0
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert "catalog.book_listing" in response.json()["checks"]["projectors"]
    assert "behind" in response.json()["checks"]["projectors"]
    settings.READY_MAX_LAG_SECONDS = 60
    assert Client().get("/readyz").status_code == 200
