"""The runs side of the console: a live list, a live read-only run page, cancel/retry/resume.

Actions call `runs.services`; each refusal the service raises becomes a message, never a 500.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from runs import services
from runs.console import DONE_STEP_STATUSES, run_snapshot, snapshot_json
from runs.exceptions import RunError, RunNotCancellable
from runs.models import Run
from workflows.diagram import render_svg


def can_cancel(user) -> bool:
    return user.has_perm("runs.cancel_run")


def can_run(user) -> bool:
    return user.has_perm("workflows.run_workflow")


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = (
        "run_link",
        "workflow",
        "status_badge",
        "progress",
        "trigger_short",
        "triggered_by",
        "created_at",
        "duration",
    )
    list_display_links = None
    list_filter = ("status", "workflow", "trigger", ("created_at", admin.DateFieldListFilter))
    list_select_related = ("workflow", "triggered_by")
    search_fields = ("=id", "workflow__slug", "workflow__name", "idempotency_key")
    date_hierarchy = "created_at"
    list_per_page = 50
    actions = ["cancel_selected"]
    change_list_template = "admin/runs/run/change_list.html"

    class Media:
        css = {"all": ["appstrate/console.css"]}
        js = ["appstrate/runs_list.js"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                steps_total=Count("steps"),
                steps_done=Count("steps", filter=Q(steps__status__in=DONE_STEP_STATUSES)),
            )
        )

    def has_add_permission(self, request):
        return False  # runs start from a workflow's run-now form, the API or a trigger

    def has_change_permission(self, request, obj=None):
        return False  # a run is history: the page is read-only, actions go through services

    def has_cancel_permission(self, request):
        return can_cancel(request.user)

    @admin.display(description="Run", ordering="id")
    def run_link(self, run):
        url = reverse("admin:runs_run_change", args=[run.pk])
        return format_html('<a href="{}">#{}</a>', url, run.pk)

    @admin.display(description="Status", ordering="status")
    def status_badge(self, run):
        return format_html(
            '<span class="status status-{}" data-run-status="{}">{}</span>',
            run.status,
            run.pk,
            run.get_status_display(),
        )

    @admin.display(description="Steps")
    def progress(self, run):
        total = len((run.version.definition or {}).get("steps") or []) if run.version_id else 0
        return f"{run.steps_done}/{max(total, run.steps_total)}"

    @admin.display(description="Trigger", ordering="trigger")
    def trigger_short(self, run):
        return run.trigger  # the one-word value; the filter shows the long labels

    @admin.display(description="Duration")
    def duration(self, run):
        if run.started_at and run.finished_at:
            return _human_duration((run.finished_at - run.started_at).total_seconds())
        return "—"

    def get_list_select_related(self, request):
        return ("workflow", "triggered_by", "version")

    @admin.action(description="Cancel selected runs", permissions=["cancel"])
    def cancel_selected(self, request, queryset):
        cancelled, final = 0, 0
        for run in queryset:
            try:
                services.cancel_run(run, by=request.user)
                cancelled += 1
            except RunNotCancellable:
                final += 1
        if cancelled:
            self.message_user(request, f"Cancelled {cancelled} run(s).", messages.SUCCESS)
        if final:
            self.message_user(request, f"{final} run(s) had already finished.", messages.WARNING)

    # The run page and its actions.

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:run_id>/change/", wrap(self.run_page), name="runs_run_change"),
            path("<int:run_id>/state/", wrap(self.run_state), name="runs_run_state"),
            path("<int:run_id>/cancel/", wrap(self.cancel_view), name="runs_run_cancel"),
            path("<int:run_id>/retry/", wrap(self.retry_view), name="runs_run_retry"),
            path("<int:run_id>/resume/", wrap(self.resume_view), name="runs_run_resume"),
            *super().get_urls(),
        ]

    def _snapshot_or_404(self, request, run_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            return run_snapshot(run_id)
        except Run.DoesNotExist as exc:
            raise Http404(f"No run {run_id}.") from exc

    def run_page(self, request: HttpRequest, run_id: int) -> HttpResponse:
        snapshot = self._snapshot_or_404(request, run_id)
        run = snapshot["run"]
        statuses = {s["id"]: s["status"] for s in snapshot["steps"]}
        user = request.user
        context = {
            **self.admin_site.each_context(request),
            "run_page_config": {
                "runId": run.pk,
                "socketPath": f"/ws/runs/{run.pk}/",
                "after": snapshot["last_event_seq"],
                "stateUrl": reverse("admin:runs_run_state", args=[run.pk]),
            },
            "opts": self.opts,
            "title": f"Run #{run.pk} of {run.workflow}",
            "subtitle": None,
            "snapshot": snapshot,
            "run": run,
            "diagram": render_svg(run.version.definition or {}, statuses),
            "can_cancel": can_cancel(user) and not run.is_final,
            "can_retry": can_run(user) and run.is_final,
            "can_resume": can_run(user) and run.is_final and run.status != Run.Status.SUCCEEDED,
            "has_view_permission": True,
            "original": run,
        }
        return TemplateResponse(request, "admin/runs/run/run_page.html", context)

    def run_state(self, request: HttpRequest, run_id: int) -> JsonResponse:
        return JsonResponse(snapshot_json(self._snapshot_or_404(request, run_id)))

    def _act(self, request, run_id, allowed, act, done):
        if request.method != "POST":
            return HttpResponse("Use POST.", status=405)
        if not allowed(request.user):
            raise PermissionDenied
        run = Run.objects.filter(pk=run_id).first()
        if run is None:
            raise Http404(f"No run {run_id}.")
        try:
            result = act(run)
        except RunError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return redirect("admin:runs_run_change", run.pk)
        self.message_user(request, done(result), messages.SUCCESS)
        return redirect("admin:runs_run_change", result.pk)

    def cancel_view(self, request, run_id):
        return self._act(
            request,
            run_id,
            can_cancel,
            lambda run: services.cancel_run(run, by=request.user),
            lambda run: f"Cancel requested for run #{run.pk}.",
        )

    def retry_view(self, request, run_id):
        return self._act(
            request,
            run_id,
            can_run,
            lambda run: services.retry_run(run, by=request.user),
            lambda new: f"Started run #{new.pk}: a retry with the same input and version.",
        )

    def resume_view(self, request, run_id):
        return self._act(
            request,
            run_id,
            can_run,
            lambda run: services.resume_run(run, by=request.user),
            lambda new: f"Started run #{new.pk}, resuming from the failed step.",
        )


def _human_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{int(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
