from django.apps import AppConfig


class AuditConfig(AppConfig):
    """Checks the read models against the write model. The one place besides the pages that
    may import both sides, because comparing them is its whole job."""

    name = "apps.audit"
    label = "audit"
