from django.urls import path, re_path

from api import views

app_name = "api"

urlpatterns = [
    path("workflows", views.list_workflows, name="workflows"),
    path("workflows/<slug:slug>/runs", views.start_run, name="start-run"),
    path("runs/<int:run_id>", views.run_detail, name="run"),
    path("runs/<int:run_id>/events", views.run_events, name="run-events"),
    path("runs/<int:run_id>/cancel", views.cancel_run, name="cancel-run"),
    path("webhooks/<str:token>", views.receive_webhook, name="webhook"),
    path("openapi.json", views.openapi_document, name="openapi"),
    # Anything else under /api/ answers with the JSON error shape, not an HTML 404 page.
    re_path(r"^(?P<rest>[\s\S]*)\Z", views.unknown_endpoint, name="unknown"),
]
