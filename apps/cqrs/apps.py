from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class CqrsConfig(AppConfig):
    name = "apps.cqrs"
    label = "cqrs"
    verbose_name = "Event log and projections"

    def ready(self) -> None:
        from apps.cqrs import checks, dispatch  # noqa: F401  (receivers and system checks)

        # Each read app declares its projectors (and write apps their subscribers) in a module
        # of that name; importing it registers them, as the admin does with admin.py.
        autodiscover_modules("projectors", "subscribers")
