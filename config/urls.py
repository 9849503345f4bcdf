from django.conf import settings
from django.contrib import admin
from django.http import JsonResponse
from django.urls import include, path
from django.views.defaults import page_not_found
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.decorators import api_view, permission_classes
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.routers import DefaultRouter

from apps.audit.views import history_view
from apps.cqrs import admin_views, health
from apps.cqrs.metrics import metrics_view
from apps.read.catalog.api import BookViewSet
from apps.read.orders.api import OrderViewSet
from apps.read.reports import admin_views as reports_admin
from apps.read.reports.api import BestsellerViewSet, LowStockViewSet, RevenueViewSet
from apps.write.catalog.api import commands as catalog_commands
from apps.write.customers.api import commands as customer_commands
from apps.write.customers.tokens import TokenView
from apps.write.inventory.api import commands as inventory_commands
from apps.write.orders.api import commands as order_commands

router = DefaultRouter()
router.register("books", BookViewSet, basename="book")
router.register("orders", OrderViewSet, basename="order")
router.register("reports/bestsellers", BestsellerViewSet, basename="report-bestsellers")
router.register("reports/revenue", RevenueViewSet, basename="report-revenue")
router.register("reports/low-stock", LowStockViewSet, basename="report-low-stock")

command_routes = [*catalog_commands, *inventory_commands, *customer_commands, *order_commands]
command_patterns = [path(route, view.as_view(), name=name) for route, view, name in command_routes]


@extend_schema(exclude=True)
@api_view(["GET"])
@permission_classes([])
def api_root(request, format=None):
    """Queries are read-only collections; commands are POST endpoints."""
    return Response(
        {
            "queries": {
                prefix: reverse(f"{basename}-list", request=request, format=format)
                for prefix, _viewset, basename in router.registry
            },
            "commands": {
                name: reverse(f"command:{name}", request=request, format=format)
                for _route, _view, name in command_routes
            },
            "schema": reverse("schema", request=request, format=format),
            "docs": reverse("api-docs", request=request, format=format),
        }
    )


def not_found(request, exception):
    """JSON under /api/, the shop's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception)


handler404 = not_found

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    # The API before the storefront's patterns, commands first: Django tries patterns in order,
    # and resolving a command's URL behind them all was 4.7 % of its request's CPU (py-spy).
    path("api/commands/", include((command_patterns, "command"))),
    path("api/", api_root, name="api-root"),
    path("api/", include(router.urls)),
    path("api/auth/token/", TokenView.as_view(), name="api-token"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("", include("apps.storefront.urls")),
    path("admin/cqrs/projections/", admin_views.projections, name="admin-projections"),
    path(
        "admin/cqrs/projections/<str:name>/<str:action>/",
        admin_views.projection_action,
        name="admin-projection-action",
    ),
    path("admin/cqrs/flow/<uuid:correlation_id>/", admin_views.flow, name="admin-flow"),
    path("admin/reports/", reports_admin.reports, name="admin-reports"),
    path(
        "admin/history/<str:aggregate_type>/<str:aggregate_id>/", history_view, name="admin-history"
    ),
    path("admin/", admin.site.urls),
    path("api-auth/", include("rest_framework.urls")),
]

if settings.SERVE_MEDIA:
    from django.http import Http404
    from django.urls import re_path
    from django.views.decorators.http import require_safe
    from django.views.static import serve

    @require_safe
    def media(request, path):
        try:
            return serve(request, path, document_root=str(settings.MEDIA_ROOT))  # per request
        except OSError as exc:  # a name the file system refuses (too long, say)
            raise Http404("No such file.") from exc

    urlpatterns.append(re_path(rf"^{settings.MEDIA_URL.strip('/')}/(?P<path>.+)$", media))
