"""Workflows in the console: JSON definitions edited with validation, code ones read-only."""

from __future__ import annotations

import json

from django.contrib import admin
from django.utils.html import format_html

from workflows.console import WorkflowConsoleMixin
from workflows.forms import WorkflowForm
from workflows.models import Workflow, WorkflowVersion
from workflows.services import save_definition


def _pretty(definition) -> str:
    return format_html(
        '<pre style="max-height: 40em; overflow: auto">{}</pre>',
        json.dumps(definition, indent=2, sort_keys=False),
    )


class WorkflowVersionInline(admin.TabularInline):
    model = WorkflowVersion
    fields = ["number", "content_hash", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ["-number"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Workflow)
class WorkflowAdmin(WorkflowConsoleMixin, admin.ModelAdmin):  # mixin: DAG, runs, run now
    form = WorkflowForm
    list_display = ["slug", "name", "source", "enabled", "retired", "current_version", "updated_at"]
    list_filter = ["source", "enabled", "retired"]
    search_fields = ["slug", "name", "description"]
    inlines = [WorkflowVersionInline]

    CODE_FIELDS = [
        "slug",
        "name",
        "description",
        "source",
        "retired",
        "current_version",
        "enabled",
        "definition_json",
    ]

    def is_code(self, obj: Workflow | None) -> bool:
        return obj is not None and obj.source == Workflow.Source.CODE

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["slug", "enabled", "definition"]
        if self.is_code(obj):
            return self.CODE_FIELDS
        return ["slug", "name", "description", "source", "current_version", "enabled", "definition"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        if self.is_code(obj):
            # Defined in a flows.py: the code is the source of truth, only `enabled` is editable.
            return [f for f in self.CODE_FIELDS if f != "enabled"]
        return ["slug", "name", "description", "source", "current_version"]

    @admin.display(description="Definition (from code)")
    def definition_json(self, obj: Workflow) -> str:
        return _pretty(obj.current_version.definition if obj.current_version else obj.definition)

    def has_delete_permission(self, request, obj=None) -> bool:
        # Code workflows come back at the next sync; deleting one would only lose its history.
        return super().has_delete_permission(request, obj) and not self.is_code(obj)

    def save_model(self, request, obj: Workflow, form, change: bool) -> None:
        if not change:
            obj.source = Workflow.Source.ADMIN
            obj.name = obj.name or obj.slug
        obj.save()
        if "definition" in form.cleaned_data and not self.is_code(obj):
            save_definition(obj, form.cleaned_data["definition"])


@admin.register(WorkflowVersion)
class WorkflowVersionAdmin(admin.ModelAdmin):
    """Versions are immutable: listed and shown, never edited."""

    list_display = ["workflow", "number", "content_hash", "created_at"]
    list_filter = ["workflow"]
    fields = ["workflow", "number", "content_hash", "created_at", "definition_json"]
    readonly_fields = fields

    @admin.display(description="Definition")
    def definition_json(self, obj: WorkflowVersion) -> str:
        return _pretty(obj.definition)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# Schedules: their admin lives next to the schedule logic (workflows/schedules.py).
from workflows import schedule_admin  # noqa: E402, F401
