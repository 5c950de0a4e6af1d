from django.conf import settings
from django.db import models


class Credential(models.Model):
    """A secret that steps use, sent only to its allowed hosts by the workflows allowed to."""

    name = models.SlugField(
        max_length=100,
        unique=True,
        help_text='How steps refer to it: "credential": "NAME" in an http step.',
    )
    type = models.CharField(max_length=50, help_text="A registered credential type.")
    fields = models.JSONField(default=dict, blank=True, help_text="The non-secret fields.")
    allowed_hosts = models.JSONField(
        default=list,
        blank=True,
        help_text="Hosts it may be sent to: api.example.com, api.example.com:8443, *.example.com.",
    )
    allowed_workflows = models.JSONField(
        default=list,
        blank=True,
        help_text='Slugs of the workflows that may use it; "*" allows every workflow.',
    )
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def allows_workflow(self, slug: str) -> bool:
        return "*" in self.allowed_workflows or slug in self.allowed_workflows


class SecretValue(models.Model):
    """One encrypted secret field of a credential, naming the key that encrypted it."""

    credential = models.ForeignKey(Credential, on_delete=models.CASCADE, related_name="secrets")
    field = models.CharField(max_length=64)
    key_id = models.CharField(max_length=32, db_index=True)
    ciphertext = models.TextField(help_text="base64(nonce + AES-GCM ciphertext + tag).")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["credential", "field"]
        constraints = [
            models.UniqueConstraint(
                fields=["credential", "field"], name="credentials_secret_unique_field"
            )
        ]

    def __str__(self) -> str:
        return f"{self.credential_id}.{self.field} (key {self.key_id})"

    @property
    def associated_data(self) -> bytes:
        # Binds the ciphertext to this credential and field: copied elsewhere, it won't open.
        return f"appstrate-credential:{self.credential_id}:{self.field}".encode()
