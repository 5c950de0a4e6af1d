from django.conf import settings
from django.db import models
from django.utils import timezone


class ApiToken(models.Model):
    """A per-user bearer token for the JSON API.

    Only a lookup prefix and the SHA-256 of the whole token are stored: the token itself is
    shown once, when it is created, and can never be read back.
    """

    SCOPES = ("read", "run", "cancel")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. 'CI deploys'.")
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    token_hash = models.CharField(max_length=64, editable=False)
    can_read = models.BooleanField(
        "scope: read", default=True, help_text="List workflows, read runs and their events."
    )
    can_run = models.BooleanField("scope: run", default=False, help_text="Start runs.")
    can_cancel = models.BooleanField("scope: cancel", default=False, help_text="Cancel runs.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def scopes(self) -> list[str]:
        return [scope for scope in self.SCOPES if getattr(self, f"can_{scope}")]

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])
