from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "apps.read.reports"
    label = "read_reports"
    verbose_name = "Reports (read model)"
