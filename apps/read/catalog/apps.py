from django.apps import AppConfig


class ReadCatalogConfig(AppConfig):
    name = "apps.read.catalog"
    label = "read_catalog"
    verbose_name = "Catalog (read model)"
