from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "apps.write.catalog"
    label = "catalog"
    verbose_name = "Catalog"
