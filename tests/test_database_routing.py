import pytest
from django.conf import settings
from django.db import connections


@pytest.mark.django_db(databases=["default", "read"])
def test_read_models_and_checkpoints_live_in_the_read_database():
    read_tables = set(connections["read"].introspection.table_names())
    write_tables = set(connections["default"].introspection.table_names())

    assert {"read_catalog_booklisting", "cqrs_projectorcheckpoint"} <= read_tables
    assert {"catalog_book", "cqrs_domainevent"} <= write_tables
    if settings.READ_DATABASE_IS_SEPARATE:
        assert (
            connections["read"].settings_dict["NAME"]
            != connections["default"].settings_dict["NAME"]
        )
        assert not {"read_catalog_booklisting", "cqrs_projectorcheckpoint"} & write_tables
        assert not {"catalog_book", "cqrs_domainevent"} & read_tables


@pytest.mark.django_db(databases=["default", "read"])
def test_statements_run_often_are_prepared_by_the_server():
    """DATABASE_PREPARED_STATEMENTS (on by default): PostgreSQL plans a statement once per
    connection from its fifth run on, instead of every time."""
    for alias in ("default", "read"):
        with connections[alias].cursor() as cursor:
            for _ in range(6):
                cursor.execute("SELECT count(*) FROM django_migrations WHERE id > %s", [0])
            cursor.execute(
                "SELECT statement FROM pg_prepared_statements WHERE statement LIKE %s",
                ["%FROM django_migrations WHERE id > $1%"],
            )
            assert len(cursor.fetchall()) == 1, alias
