from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "apps.write.customers"
    label = "customers"
    verbose_name = "Customers"
