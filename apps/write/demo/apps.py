from django.apps import AppConfig


class DemoConfig(AppConfig):
    """Demo data for `make run`, built through the command services of every context."""

    name = "apps.write.demo"
    label = "demo"
