from django.apps import AppConfig


class InventoryConfig(AppConfig):
    name = "apps.write.inventory"
    label = "inventory"
    verbose_name = "Inventory"
