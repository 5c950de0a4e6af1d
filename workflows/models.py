from django.db import models


class Workflow(models.Model):
    """What can run: a named DAG of steps whose definition lives in immutable versions."""

    class Source(models.TextChoices):
        CODE = "code", "Defined in code (flows.py)"
        ADMIN = "admin", "Written in the console"

    slug = models.SlugField(
        max_length=100, unique=True, help_text="Stable identifier, used in URLs and the API."
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.ADMIN)
    definition = models.JSONField(
        default=dict,
        blank=True,
        help_text="The JSON definition operators edit. Saving it validates it and, when it "
        "changed, stores a new version.",
    )
    current_version = models.ForeignKey(
        "WorkflowVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The version that new runs use.",
    )
    enabled = models.BooleanField(default=True, help_text="Disabled workflows accept no new runs.")
    retired = models.BooleanField(
        default=False, help_text="Set when the flows.py definition was removed from the code."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]
        permissions = [("run_workflow", "Can start runs of a workflow")]

    def __str__(self) -> str:
        return self.name or self.slug


class WorkflowVersion(models.Model):
    """One distinct definition, stored once and never changed; runs point at the one they ran."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField(help_text="1, 2, 3... in the order versions appeared.")
    content_hash = models.CharField(max_length=64, help_text="SHA-256 of the canonical JSON.")
    definition = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["workflow", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["workflow", "content_hash"], name="workflows_version_unique_hash"
            ),
            models.UniqueConstraint(
                fields=["workflow", "number"], name="workflows_version_unique_number"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.workflow.slug} v{self.number} ({self.content_hash[:8]})"


class Schedule(models.Model):
    """Fires a workflow on a cron expression in a time zone."""

    class CatchUp(models.TextChoices):
        SKIP = "skip", "Skip fires missed while nothing was running"
        ONCE = "once", "Run once for all missed fires"
        EACH = "each", "Run each missed fire, up to the limit"

    class Overlap(models.TextChoices):
        SKIP = "skip", "Skip while the previous run is active"
        QUEUE = "queue", "Queue behind the previous run"
        ALLOW = "allow", "Allow runs to overlap"

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="schedules")
    name = models.CharField(max_length=200, blank=True)
    cron = models.CharField(max_length=100, help_text="Five fields: minute hour day month weekday.")
    timezone = models.CharField(
        max_length=64, default="UTC", help_text="IANA name, e.g. Europe/Paris."
    )
    input = models.JSONField(default=dict, blank=True, help_text="Input given to each run.")
    enabled = models.BooleanField(default=True)
    catch_up = models.CharField(max_length=10, choices=CatchUp.choices, default=CatchUp.SKIP)
    catch_up_limit = models.PositiveIntegerField(
        default=10, help_text="Most missed fires run with 'each'."
    )
    overlap = models.CharField(max_length=10, choices=Overlap.choices, default=Overlap.SKIP)
    next_fire_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_fired_at = models.DateTimeField(null=True, blank=True)
    pending_fires = models.PositiveIntegerField(
        default=0, help_text="Fires waiting for the previous run to finish (overlap 'queue')."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name or f"{self.workflow.slug} @ {self.cron} ({self.timezone})"

    def save(self, *args, **kwargs) -> None:
        # The next fire counts from now whenever what decides it changes: no catch-up for fires
        # "missed" before the schedule existed, was enabled, or had this cron.
        from workflows import schedules

        previous = (
            Schedule.objects.filter(pk=self.pk).values("cron", "timezone", "enabled").first()
            if self.pk
            else None
        )
        current = {"cron": self.cron, "timezone": self.timezone, "enabled": self.enabled}
        if previous != current or (self.enabled and self.next_fire_at is None):
            schedules.reschedule(self)
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], "next_fire_at"}
        super().save(*args, **kwargs)

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from workflows import schedules

        errors = schedules.validate(self.cron, self.timezone)
        if errors:
            raise ValidationError(errors)


class WebhookTrigger(models.Model):
    """A secret URL that starts a run of a workflow with the request body as input."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="webhooks")
    name = models.CharField(max_length=200)
    token = models.CharField(max_length=64, unique=True, help_text="The secret part of the URL.")
    signing_secret = models.CharField(
        max_length=200,
        blank=True,
        help_text="When set, requests must carry an HMAC-SHA256 signature.",
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.name} → {self.workflow.slug}"
