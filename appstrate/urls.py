from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from infra import views as infra_views

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("healthz", infra_views.healthz, name="healthz"),
    path("readyz", infra_views.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("api/", include("api.urls")),
]
