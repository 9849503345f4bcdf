from django.apps import AppConfig


class ContractsConfig(AppConfig):
    name = "apps.contracts"
    label = "contracts"
    verbose_name = "Event contracts"

    def ready(self) -> None:
        # Every event type and upcaster is known before the first event is read.
        from apps.contracts import catalog, customers, inventory, orders  # noqa: F401
