"""Webhook triggers in the console: the secret URL and signing secret are generated here."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from api.services import new_webhook_secret, new_webhook_token
from workflows.models import WebhookTrigger


class WebhookTriggerForm(forms.ModelForm):
    require_signature = forms.BooleanField(
        required=False,
        initial=True,
        help_text="Generate a signing secret: requests must then carry an HMAC-SHA256 signature.",
    )

    class Meta:
        model = WebhookTrigger
        fields = ["workflow", "name", "enabled"]


@admin.register(WebhookTrigger)
class WebhookTriggerAdmin(admin.ModelAdmin):
    form = WebhookTriggerForm
    list_display = ["name", "workflow", "enabled", "signed", "created_at"]
    list_filter = ["enabled", "workflow"]
    search_fields = ["name", "workflow__slug"]
    readonly_fields = ["url", "signed", "created_at"]
    actions = ["rotate_signing_secret"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["workflow", "name", "enabled", "require_signature"]
        return ["workflow", "name", "enabled", "url", "signed", "created_at"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.token = new_webhook_token()
            if form.cleaned_data.get("require_signature"):
                obj.signing_secret = new_webhook_secret()
        super().save_model(request, obj, form, change)

    def response_add(self, request, obj, post_url_continue=None):
        return self._show_once(request, [obj], "Webhook created")

    def _show_once(self, request, hooks, title):
        # The signing secret is shown on this page only; the change page never repeats it.
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "hooks": [(hook, self._absolute_url(request, hook)) for hook in hooks],
        }
        return TemplateResponse(request, "admin/api/webhooktrigger/created.html", context)

    def _absolute_url(self, request, hook: WebhookTrigger) -> str:
        return request.build_absolute_uri(reverse("api:webhook", args=[hook.token]))

    @admin.display(description="URL")
    def url(self, obj: WebhookTrigger) -> str:
        return format_html("<code>{}</code>", reverse("api:webhook", args=[obj.token]))

    @admin.display(boolean=True, description="signed")
    def signed(self, obj: WebhookTrigger) -> bool:
        return bool(obj.signing_secret)

    @admin.action(description="Rotate the signing secret (shown once)")
    def rotate_signing_secret(self, request, queryset):
        hooks = list(queryset)
        for hook in hooks:
            hook.signing_secret = new_webhook_secret()
            hook.save(update_fields=["signing_secret"])
        self.message_user(request, f"Rotated {len(hooks)} signing secret(s).", messages.SUCCESS)
        return self._show_once(request, hooks, "New signing secrets")
