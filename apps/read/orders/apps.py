from django.apps import AppConfig


class ReadOrdersConfig(AppConfig):
    name = "apps.read.orders"
    label = "read_orders"
    verbose_name = "Orders (read model)"
