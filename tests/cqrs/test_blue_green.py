"""Blue-green rebuilds: a new version of a read model is built beside the live one, which serves
and projects meanwhile; the switch takes every event, keeps the migrations' names, and a build
that fails changes nothing that serves."""

import threading
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache as django_cache
from django.db import connections

from apps.cqrs import blue_green, locks, runtime
from apps.cqrs.models import ProjectorCheckpoint, ReadModelVersion
from apps.cqrs.projectors import building, registry
from apps.read.catalog import cache
from apps.read.catalog.models import BookListing
from apps.read.catalog.projectors import BookListingProjector
from apps.write.catalog import services
from apps.write.catalog.models import Book
from tests.conftest import another_session, wait_for
from tests.factories import add_author, new_isbn

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "read"])
LISTING = "catalog.book_listing"
CODE = BookListingProjector.version  # the version in the code, built over version 1


def add_books(count: int, *, first: int = 0) -> None:
    author = add_author(name=f"Author {first}")
    for i in range(first, first + count):
        services.book_add(
            actor=None,
            title=f"Book {i}",
            isbn=new_isbn(),
            author_ids=[author.pk],
            price=Decimal("10.00") + i,
            language=["en", "fr", "de"][i % 3],
        )


def as_version_1() -> None:
    """The listing as version 1 of its projector left it: every language the column's default,
    and the version table saying so (a deploy of a later version has just happened)."""
    BookListing.objects.update(language="en")
    ReadModelVersion.objects.update_or_create(name=LISTING, defaults={"version": 1})


def languages() -> dict[int, str]:
    return dict(BookListing.objects.values_list("book_id", "language"))


def schema_objects(table: str) -> set[str]:
    """The names of the table's indexes, constraints and triggers, as migrations know them."""
    with connections["read"].cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = %s "
            "UNION SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(%s) "
            "UNION SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass(%s) "
            "AND NOT tgisinternal",
            [table, table, table],
        )
        return {name for (name,) in cursor.fetchall()}


def index_definitions(table: str, *, schema: str = "public") -> set[str]:
    with connections["read"].cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s",
            [schema, table],
        )
        return {definition for (definition,) in cursor.fetchall()}


def statistics_targets(table: str) -> set[tuple[str, int | str, int]]:
    """(index, column number, target) of the table's index columns and (table, column name,
    target) of its own columns, where a statistics target is set."""
    with connections["read"].cursor() as cursor:
        cursor.execute(
            "SELECT i.relname, a.attnum, a.attstattarget FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_attribute a ON a.attrelid = i.oid "
            "WHERE x.indrelid = to_regclass(%s) AND a.attstattarget > 0",
            [table],
        )
        targets = set(cursor.fetchall())
        cursor.execute(
            "SELECT %s, attname, attstattarget FROM pg_attribute WHERE attrelid = "
            "to_regclass(%s) AND attnum > 0 AND attstattarget >= 0",
            [table, table],
        )
        return targets | set(cursor.fetchall())


def analyzed(table: str) -> set[tuple[str, str]]:
    """(table or index, column) of the planner statistics the table and its indexes have."""
    with connections["read"].cursor() as cursor:
        cursor.execute(
            "SELECT tablename, attname FROM pg_stats WHERE schemaname = 'public' AND tablename "
            "IN (SELECT relname FROM pg_class WHERE oid = to_regclass(%s) OR oid IN "
            "(SELECT indexrelid FROM pg_index WHERE indrelid = to_regclass(%s)))",
            [table, table],
        )
        return set(cursor.fetchall())


def build_schemas() -> list[str]:
    with connections["read"].cursor() as cursor:
        cursor.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'build\\_%%' "
            "OR nspname LIKE 'retired\\_%%'"
        )
        return [name for (name,) in cursor.fetchall()]


def test_a_new_version_is_built_beside_the_live_one_and_takes_every_event_at_the_switch():
    listing = registry.get(LISTING)
    add_books(12)
    runtime.catch_up(listing)
    as_version_1()
    assert blue_green.wanted(listing)
    names = schema_objects("read_catalog_booklisting")
    assert {
        "listing_title_id",
        "listing_search_vector",
        "listing_title_trgm",
        "read_catalog_booklisting_pkey",
        "listing_vectors",  # the trigger that sets the search vectors (read_catalog 0022)
    } <= names
    targets = statistics_targets("read_catalog_booklisting")
    assert ("listing_title_trgm", 1, 1000) in targets  # read_catalog migrations 0015, 0019
    assert ("read_catalog_booklisting", "document", 0) in targets  # 0020
    definitions = index_definitions("read_catalog_booklisting")
    cache_version = django_cache.get(cache.VERSION_KEY) or cache._version()

    # While the build replays the log, the live table serves as it was and keeps projecting
    with blue_green.build_lock(listing):
        blue_green.prepare(listing)
        # ... and the build loads its rows with only the indexes that keep keys unique
        built = index_definitions(
            "read_catalog_booklisting", schema=blue_green.build_schema(listing)
        )
        assert len(built) == 2, built
        assert all(" UNIQUE INDEX " in definition for definition in built), built
        with blue_green.into_build(listing):
            assert building()
            runtime.replay(listing)
        assert set(languages().values()) == {"en"}
        add_books(3, first=100)  # committed after the build's replay
        runtime.catch_up(listing)
        assert len(languages()) == 15
        assert blue_green.status([listing])[0].progress is not None

        blue_green.switch(listing)

    # The new version serves, with the events that came during the build
    expected = dict(Book.objects.values_list("pk", "language"))
    assert languages() == expected
    assert set(expected.values()) == {"en", "fr", "de"}
    assert schema_objects("read_catalog_booklisting") == names
    assert index_definitions("read_catalog_booklisting") == definitions
    # ... its rows' search vectors set by the trigger the build was given
    assert BookListing.objects.extra(where=["title_vector @@ 'book'"]).count() == 15
    assert statistics_targets("read_catalog_booklisting") == targets
    # ... with planner statistics for its columns and its indexes' expressions, analyzed apart
    # (blue_green._analyze), and none for the columns no query filters on
    statistics = analyzed("read_catalog_booklisting")
    assert {("read_catalog_booklisting", "title"), ("listing_title_trgm", "lower")} <= statistics
    assert ("read_catalog_booklisting", "document") not in statistics
    assert ProjectorCheckpoint.objects.get(name=LISTING).position == runtime.head_position()
    version = ReadModelVersion.objects.get(name=LISTING)
    assert (version.version, version.building, version.state) == (CODE, None, "")
    assert not blue_green.wanted(listing)
    assert build_schemas() == []
    assert django_cache.get(cache.VERSION_KEY) != cache_version
    # ... and goes on projecting into the switched table
    add_books(1, first=200)
    runtime.catch_up(listing)
    assert len(languages()) == 16


def test_a_build_that_fails_leaves_the_live_version_serving(monkeypatch):
    listing = registry.get(LISTING)
    add_books(6)
    runtime.catch_up(listing)
    as_version_1()
    live = list(BookListing.objects.order_by("book_id").values_list())
    applied = BookListingProjector.apply_batch

    def broken_in_the_build(self, events):
        if building():
            raise RuntimeError("the new version cannot read this")
        return applied(self, events)

    monkeypatch.setattr(BookListingProjector, "apply_batch", broken_in_the_build)
    with pytest.raises(blue_green.BuildFailed):
        blue_green.build(listing)

    assert list(BookListing.objects.order_by("book_id").values_list()) == live
    version = ReadModelVersion.objects.get(name=LISTING)
    assert (version.version, version.building, version.state) == (1, CODE, "failed")
    assert "stopped at position" in version.error
    assert build_schemas() == []
    assert not blue_green.wanted(listing)  # not again by itself: staff rebuild it
    # The live version still projects
    add_books(1, first=50)
    runtime.catch_up(listing)
    assert len(languages()) == 7

    # Once fixed, staff's rebuild switches
    monkeypatch.setattr(BookListingProjector, "apply_batch", applied)
    blue_green.build(listing)
    assert languages() == dict(Book.objects.values_list("pk", "language"))
    assert ReadModelVersion.objects.get(name=LISTING).state == ""


@pytest.mark.parametrize(
    ("change", "undo"),
    [
        (
            "ALTER TABLE read_catalog_booklisting ADD COLUMN late integer",
            "ALTER TABLE read_catalog_booklisting DROP COLUMN late",
        ),
        (
            "CREATE TRIGGER late BEFORE INSERT ON read_catalog_booklisting "
            "FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()",
            "DROP TRIGGER late ON read_catalog_booklisting",
        ),
    ],
    ids=["column", "trigger"],
)
def test_a_table_that_changed_shape_during_the_build_is_not_switched_to(change, undo):
    listing = registry.get(LISTING)
    add_books(3)
    runtime.catch_up(listing)
    with blue_green.build_lock(listing):
        blue_green.prepare(listing)
        with blue_green.into_build(listing):
            runtime.replay(listing)
        with connections["read"].cursor() as cursor:
            cursor.execute(change)
        try:
            with pytest.raises(blue_green.BuildFailed, match="changed shape"):
                blue_green.switch(listing)
            assert len(languages()) == 3
        finally:
            with connections["read"].cursor() as cursor:
                cursor.execute(undo)
            blue_green.fail(listing, RuntimeError("test"))


def test_one_build_of_a_projector_runs_at_a_time():
    listing = registry.get(LISTING)
    holding, release = threading.Event(), threading.Event()

    def other_builder():
        try:
            with blue_green.build_lock(listing):
                holding.set()
                release.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=other_builder)
    thread.start()
    try:
        assert holding.wait(10)
        assert blue_green.running(listing)
        with pytest.raises(blue_green.BuildRunning):
            blue_green.build(listing)
    finally:
        release.set()
        thread.join()
    assert not blue_green.running(listing)


def test_a_builder_that_dies_frees_its_projector():
    listing = registry.get(LISTING)
    with another_session("read") as other:
        other.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", [locks.BUILD, LISTING])
        assert blue_green.running(listing)
    # Its session ended without unlocking
    assert wait_for(lambda: not blue_green.running(listing))


def test_a_build_in_another_database_of_the_server_is_not_this_ones():
    """Found when a benchmark's rebuild, in its own database, made every build here wait."""
    listing = registry.get(LISTING)
    with another_session("read", dbname="postgres") as other:
        other.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", [locks.BUILD, LISTING])
        assert not blue_green.running(listing)
        with blue_green.build_lock(listing):
            assert blue_green.running(listing)


@pytest.mark.worker
def test_deploying_a_new_version_builds_it_in_the_background(celery_worker):
    listing = registry.get(LISTING)
    add_books(9)
    wait_for(lambda: len(languages()) == 9, timeout=20)
    as_version_1()

    # The beat's sweep sees version 1 serving and a later one in the code, and builds it
    wait_for(lambda: ReadModelVersion.objects.get(name=LISTING).version == CODE, timeout=30)
    assert languages() == dict(Book.objects.values_list("pk", "language"))
    # The builder lets its lock go once it has dropped the old tables
    wait_for(lambda: not blue_green.running(listing), timeout=10)
    assert not blue_green.wanted(listing)


def test_the_admin_shows_both_versions_and_the_build_under_way(client):
    staff = get_user_model().objects.create_superuser("chief", "chief@example.com", "pw")
    client.force_login(staff)
    listing = registry.get(LISTING)
    add_books(4)
    runtime.catch_up(listing)
    as_version_1()
    with blue_green.build_lock(listing):
        blue_green.prepare(listing)
        with blue_green.into_build(listing):
            runtime.replay(listing)
        page = client.get("/admin/cqrs/projections/").content.decode()
        blue_green.fail(listing, RuntimeError("stopped by staff"))
    row = page[page.index("<td>catalog.book_listing</td>") :].split("</tr>")[0]
    assert "<td>v1" in row  # serving
    assert f"<td>v{CODE}</td>" in row  # in the code
    assert f"building v{CODE}" in row
    assert "100% of the log" in row

    failed = client.get("/admin/cqrs/projections/").content.decode()
    assert f"v{CODE} failed; v1 serves on" in failed
    assert "stopped by staff" in failed
    queued = client.post("/admin/cqrs/projections/catalog.book_listing/rebuild/", follow=True)
    assert f"Building catalog.book_listing v{CODE} beside the live one" in queued.content.decode()
