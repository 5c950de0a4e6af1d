from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.template.response import TemplateResponse
from django.utils import timezone

from api import webhook_admin  # noqa: F401  (registers WebhookTrigger)
from api.models import ApiToken
from api.tokens import fill_secret


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "scope_list", "created_at", "last_used_at", "active"]
    list_filter = ["can_read", "can_run", "can_cancel", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "user__username"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        fields = ["user", "name", "can_read", "can_run", "can_cancel"]
        return fields if obj is None else [*fields, *self.readonly_fields]

    def get_readonly_fields(self, request, obj=None):
        # A token's owner never changes: it would hand one user's token to another.
        return self.readonly_fields if obj is None else ["user", *self.readonly_fields]

    def get_queryset(self, request):
        tokens = super().get_queryset(request).select_related("user")
        return tokens if request.user.is_superuser else tokens.filter(user=request.user)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user":
            kwargs.setdefault("initial", request.user.pk)
            if not request.user.is_superuser:
                kwargs["queryset"] = get_user_model().objects.filter(pk=request.user.pk)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if not change:
            if not request.user.is_superuser:
                obj.user = request.user
            # Kept on the request only, for the page that shows it once: never stored.
            request.api_token_text = fill_secret(obj)
        super().save_model(request, obj, form, change)

    def response_add(self, request, obj, post_url_continue=None):
        context = {
            **self.admin_site.each_context(request),
            "title": "Copy your API token now",
            "opts": self.opts,
            "token": obj,
            "token_text": request.api_token_text,
        }
        # Rendered directly (no redirect, no message) so the token is in this response only.
        return TemplateResponse(request, "admin/api/apitoken/token_created.html", context)

    @admin.display(description="scopes")
    def scope_list(self, obj: ApiToken) -> str:
        return ", ".join(obj.scopes) or "none"

    @admin.display(boolean=True, description="active")
    def active(self, obj: ApiToken) -> bool:
        return not obj.is_revoked

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)
