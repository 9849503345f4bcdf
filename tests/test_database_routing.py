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
