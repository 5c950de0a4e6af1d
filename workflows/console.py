"""The workflow page's console parts: its DAG, its recent runs and the run-now form.

`WorkflowConsoleMixin` goes first in `WorkflowAdmin`'s bases (workflows/admin.py); it adds
context and URLs and leaves the definition editing to that admin.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from runs import services as run_services
from runs.exceptions import InvalidInput, RunError
from runs.models import Run
from workflows.diagram import render_svg
from workflows.input_form import InputForm
from workflows.models import Workflow

RECENT_RUNS = 10


def can_run(user: Any) -> bool:
    return user.has_perm("workflows.run_workflow")


def workflow_definition(workflow: Workflow) -> dict[str, Any]:
    """What runs would execute: the current version, else the (unsaved) edited definition."""
    if workflow.current_version_id:
        return workflow.current_version.definition or {}
    return workflow.definition if isinstance(workflow.definition, dict) else {}


class WorkflowConsoleMixin:
    change_form_template = "admin/workflows/workflow/console_change_form.html"
    actions = ["enable_selected", "disable_selected"]

    @admin.action(description="Enable selected workflows", permissions=["change"])
    def enable_selected(self, request, queryset):
        count = queryset.update(enabled=True, updated_at=timezone.now())
        self.message_user(request, f"Enabled {count} workflow(s).", messages.SUCCESS)

    @admin.action(description="Disable selected workflows (no new runs)", permissions=["change"])
    def disable_selected(self, request, queryset):
        count = queryset.update(enabled=False, updated_at=timezone.now())
        self.message_user(request, f"Disabled {count} workflow(s).", messages.SUCCESS)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:workflow_id>/run/", wrap(self.run_now_view), name="workflows_workflow_run"),
            *super().get_urls(),
        ]

    def get_list_display(self, request):
        columns = list(super().get_list_display(request))
        return [*columns, "run_now_link"] if can_run(request.user) else columns

    @admin.display(description="")
    def run_now_link(self, workflow: Workflow) -> str:
        url = reverse("admin:workflows_workflow_run", args=[workflow.pk])
        return format_html('<a href="{}" class="button run-now-link">Run now</a>', url)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        workflow = Workflow.objects.filter(pk=object_id).select_related("current_version").first()
        if workflow is not None:
            runs = Run.objects.filter(workflow=workflow).select_related("triggered_by")
            extra_context = {
                **(extra_context or {}),
                "diagram": render_svg(workflow_definition(workflow)),
                "recent_runs": runs[:RECENT_RUNS],
                "can_run_now": can_run(request.user) and workflow.enabled,
                "run_now_url": reverse("admin:workflows_workflow_run", args=[workflow.pk]),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def run_now_view(self, request: HttpRequest, workflow_id: int) -> HttpResponse:
        if not can_run(request.user):
            raise PermissionDenied
        workflow = Workflow.objects.filter(pk=workflow_id).select_related("current_version").first()
        if workflow is None:
            raise Http404(f"No workflow {workflow_id}.")
        schema = workflow_definition(workflow).get("input_schema")
        if request.method == "POST":
            form = InputForm(schema, request.POST)
            if form.is_valid():
                try:
                    run = run_services.start_run(
                        workflow,
                        input=form.input_value(),
                        trigger=Run.Trigger.MANUAL,
                        triggered_by=request.user,
                    )
                except InvalidInput as exc:
                    form.add_input_errors(exc.errors)
                except RunError as exc:
                    form.add_error(None, str(exc))
                else:
                    messages.success(request, f"Started run #{run.pk} of {workflow}.")
                    return redirect("admin:runs_run_change", run.pk)
        else:
            form = InputForm(schema)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Run {workflow}",
            "workflow": workflow,
            "form": form,
            "diagram": render_svg(workflow_definition(workflow)),
            "has_view_permission": True,
        }
        return TemplateResponse(
            request,
            "admin/workflows/workflow/run_now.html",
            context,
            status=400 if form.errors else 200,
        )
