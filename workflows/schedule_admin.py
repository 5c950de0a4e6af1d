"""Schedules in the console: cron and time zone validated on their fields, the next five fires."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join

from workflows import schedules
from workflows.models import Schedule


class ScheduleForm(forms.ModelForm):
    class Meta:
        model = Schedule
        fields = [
            "workflow", "name", "cron", "timezone", "input", "enabled",
            "catch_up", "catch_up_limit", "overlap",
        ]  # fmt: skip
        help_texts = {
            "cron": "Five fields (minute hour day month weekday), e.g. '*/15 9-17 * * mon-fri'; "
            "or six with seconds first, e.g. '*/10 * * * * *'.",
            "timezone": "IANA name, e.g. Europe/Paris. Fire times follow its DST changes.",
        }

    def clean(self):
        cleaned = super().clean()
        workflow, payload = cleaned.get("workflow"), cleaned.get("input")
        if workflow is not None and workflow.current_version_id and "input" not in self.errors:
            # The same check a run makes when it starts: better said now than at 3 a.m.
            from runs.exceptions import InvalidInput
            from runs.services import validate_input

            try:
                validate_input(workflow.current_version.definition, payload)
            except InvalidInput as exc:
                self.add_error("input", str(exc))
        return cleaned


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    form = ScheduleForm
    list_display = [
        "__str__", "workflow", "cron", "timezone", "enabled", "next_fire_at", "last_fired_at",
        "overlap", "catch_up",
    ]  # fmt: skip
    list_filter = ["enabled", "workflow", "overlap", "catch_up"]
    search_fields = ["name", "workflow__slug", "cron"]
    readonly_fields = ["next_fire_times", "next_fire_at", "last_fired_at", "pending_fires"]
    actions = ["enable", "disable"]

    @admin.display(description="Next five fire times")
    def next_fire_times(self, obj: Schedule) -> str:
        if obj.pk is None or not obj.enabled:
            return "—"
        times = schedules.next_fire_times(obj, 5)
        if not times:
            return "Never"
        return format_html(
            "<ol>{}</ol>",
            format_html_join(
                "", "<li>{}</li>", ((t.strftime("%Y-%m-%d %H:%M:%S %Z (UTC%z)"),) for t in times)
            ),
        )

    @admin.action(description="Enable selected schedules", permissions=["change"])
    def enable(self, request, queryset) -> None:
        count = 0
        for schedule in queryset.filter(enabled=False):
            schedule.enabled = True
            schedule.save()  # counts the next fire from now: no burst of "missed" fires
            count += 1
        self.message_user(request, f"Enabled {count} schedule(s).", messages.SUCCESS)

    @admin.action(description="Disable selected schedules", permissions=["change"])
    def disable(self, request, queryset) -> None:
        count = 0
        for schedule in queryset.filter(enabled=True):
            schedule.enabled = False
            schedule.save()
            count += 1
        self.message_user(request, f"Disabled {count} schedule(s).", messages.SUCCESS)
