"""The credentials console: create and edit with secrets never sent back, test, see usage."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.views.decorators.debug import sensitive_post_parameters

from credentials import services
from credentials.exceptions import CredentialError
from credentials.forms import CredentialTestForm, declared_value_fields, form_for_type
from credentials.models import Credential
from credentials.types import all_types, get_type


class TypeFilter(admin.SimpleListFilter):
    title = "type"
    parameter_name = "type"

    def lookups(self, request, model_admin):
        return [(t.name, t.label) for t in all_types()]

    def queryset(self, request, queryset):
        return queryset.filter(type=self.value()) if self.value() else queryset


@admin.register(Credential)
class CredentialAdmin(admin.ModelAdmin):
    list_display = ["name", "type_label", "hosts", "secrets_summary", "updated_at", "updated_by"]
    list_filter = [TypeFilter]
    search_fields = ["name", "description"]
    readonly_fields = [
        "type_label",
        "plain_values",
        "secrets_summary",
        "used_by",
        "test_link",
        "created_at",
        "updated_at",
        "updated_by",
    ]
    actions = ["test_credential"]

    def get_queryset(self, request):
        # The list shows each credential's secret status: one query for all their values.
        return (
            super().get_queryset(request).select_related("updated_by").prefetch_related("secrets")
        )

    # The type decides the form: on add it comes from ?type=, afterwards from the instance.
    def _type_for(self, request: HttpRequest, obj: Credential | None):
        name = obj.type if obj else request.GET.get("type", "")
        return get_type(name)

    # Error reports must not show the secrets a failed request posted.
    @method_decorator(sensitive_post_parameters())
    def add_view(self, request, form_url="", extra_context=None):
        if self._type_for(request, None) is None:
            return self._choose_type_view(request)
        return super().add_view(request, form_url, extra_context)

    @method_decorator(sensitive_post_parameters())
    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        if obj is not None and get_type(obj.type) is None:
            self.message_user(
                request,
                f"The type {obj.type!r} is not registered: it cannot be edited.",
                messages.ERROR,
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def get_form(self, request, obj=None, change=False, **kwargs):
        type_ = self._type_for(request, obj)
        if type_ is not None and self.has_change_or_add(request, obj):
            kwargs["form"] = form_for_type(type_)
        return super().get_form(request, obj, change=change, **kwargs)

    def has_change_permission(self, request, obj=None):
        # A credential whose type is no longer registered cannot be edited, only viewed/deleted.
        if obj is not None and get_type(obj.type) is None:
            return False
        return super().has_change_permission(request, obj)

    def has_change_or_add(self, request, obj) -> bool:
        if obj is None:
            return self.has_add_permission(request)
        return self.has_change_permission(request, obj)

    def get_fieldsets(self, request, obj=None):
        type_ = self._type_for(request, obj)
        editable = type_ is not None and self.has_change_or_add(request, obj)
        values = declared_value_fields(type_) if editable else ["plain_values"]
        fieldsets = [
            (None, {"fields": ["name", "type_label", "description"]}),
            ("Values", {"fields": values}),
            (
                "Where it may be used",
                {"fields": ["allowed_hosts", "allowed_workflows", "used_by"]},
            ),
        ]
        if obj is not None:
            fieldsets.append(
                (
                    "Status",
                    {
                        "fields": [
                            "secrets_summary",
                            "test_link",
                            "created_at",
                            "updated_at",
                            "updated_by",
                        ]
                    },
                )
            )
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        readonly = list(self.readonly_fields)
        if obj is not None:
            readonly.append("name")  # steps refer to it by name; rename = new credential
        return readonly

    def save_model(self, request, obj, form, change):
        fields, secrets, clear = form.values()
        services.update_credential(
            obj,
            fields=fields,
            secrets=secrets,
            clear_secrets=clear,
            allowed_hosts=form.cleaned_data["allowed_hosts"],
            allowed_workflows=form.cleaned_data["allowed_workflows"],
            by=request.user,
        )

    @admin.display(description="Type")
    def type_label(self, obj: Credential) -> str:
        type_ = get_type(obj.type) if obj.type else None
        return type_.label if type_ else obj.type or "-"

    @admin.display(description="Allowed hosts")
    def hosts(self, obj: Credential) -> str:
        return ", ".join(obj.allowed_hosts) or "none"

    @admin.display(description="Non-secret fields")
    def plain_values(self, obj: Credential) -> str:
        return ", ".join(f"{k}={v}" for k, v in obj.fields.items()) or "-"

    @admin.display(description="Secrets")
    def secrets_summary(self, obj: Credential) -> str:
        if not obj.pk:
            return "-"
        parts = []
        for status in services.secret_status(obj):
            if not status.is_set:
                parts.append(f"{status.field}: not set")
            elif status.problem:
                parts.append(f"{status.field}: unreadable ({status.problem})")
            else:
                parts.append(f"{status.field}: set {status.fingerprint}")
        return "; ".join(parts) or "none"

    @admin.display(description="Used by workflows")
    def used_by(self, obj: Credential) -> str:
        if not obj.pk:
            return "-"
        workflows = services.workflows_using(obj.name)
        if not workflows:
            return "No workflow's current version uses it."
        return format_html_join(
            ", ", '<a href="{}">{}</a>', ((_workflow_url(w), w.slug) for w in workflows)
        )

    @admin.display(description="Test")
    def test_link(self, obj: Credential) -> str:
        type_ = get_type(obj.type)
        if not obj.pk or type_ is None or not type_.testable:
            return "This type has no test."
        url = reverse("admin:credentials_credential_test", args=[obj.pk])
        return format_html('<a class="button" href="{}">Test this credential</a>', url)

    @admin.action(description="Test the selected credential")
    def test_credential(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one credential to test.", messages.WARNING)
            return None
        url = reverse("admin:credentials_credential_test", args=[queryset.get().pk])
        return HttpResponseRedirect(url)

    def get_urls(self):
        test_view = self.admin_site.admin_view(self.test_view)
        return [
            path("<int:object_id>/test/", test_view, name="credentials_credential_test"),
            *super().get_urls(),
        ]

    def test_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        credential = get_object_or_404(Credential, pk=object_id)
        if not self.has_change_permission(request, credential):
            raise PermissionDenied
        form = CredentialTestForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                result = services.test_credential(credential, form.cleaned_data["target"])
                self.message_user(request, f"Test of {credential.name} passed: {result}")
            except CredentialError as exc:
                self.message_user(
                    request, f"Test of {credential.name} failed: {exc}", messages.ERROR
                )
            return HttpResponseRedirect(request.path)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Test credential {credential.name}",
            "opts": self.opts,
            "original": credential,
            "form": form,
            "hosts": credential.allowed_hosts,
        }
        return TemplateResponse(request, "credentials/test.html", context)

    def _choose_type_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Add credential: choose its type",
            "opts": self.opts,
            "types": [(t, f"?type={t.name}") for t in all_types()],
        }
        return TemplateResponse(request, "credentials/choose_type.html", context)


def _workflow_url(workflow) -> str:
    try:
        return reverse("admin:workflows_workflow_change", args=[workflow.pk])
    except NoReverseMatch:  # the workflows admin is not registered
        return "#"
