from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "apps.write.orders"
    label = "orders"
    verbose_name = "Orders"
