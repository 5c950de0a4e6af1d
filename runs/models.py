from django.conf import settings
from django.db import models


class Run(models.Model):
    """One execution of one workflow version."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        TIMED_OUT = "timed_out", "Timed out"

    FINAL_STATUSES = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.TIMED_OUT)
    ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)

    class Trigger(models.TextChoices):
        MANUAL = "manual", "Manual (console or command)"
        API = "api", "API"
        WEBHOOK = "webhook", "Webhook"
        SCHEDULE = "schedule", "Schedule"
        WORKFLOW = "workflow", "Parent workflow"
        RETRY = "retry", "Retry"
        RESUME = "resume", "Resume"

    workflow = models.ForeignKey(
        "workflows.Workflow", on_delete=models.PROTECT, related_name="runs"
    )
    version = models.ForeignKey(
        "workflows.WorkflowVersion",
        on_delete=models.PROTECT,
        related_name="runs",
        help_text="The exact definition this run executes.",
    )
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    input = models.JSONField(default=dict, blank=True)
    output = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)

    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.MANUAL)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    schedule = models.ForeignKey(
        "workflows.Schedule", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    parent_run = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="child_runs",
        help_text="Set on a sub-workflow run: the run whose `workflow` step started it.",
    )
    parent_step = models.CharField(max_length=100, blank=True)
    origin_run = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="For a retry or a resume: the run it repeats.",
    )
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(null=True, blank=True, help_text="The run times out here.")

    # Execution bookkeeping: which executor owns the run and whether it is still alive.
    owner = models.CharField(max_length=100, blank=True, help_text="Id of the executor running it.")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    dispatched_at = models.DateTimeField(
        null=True, blank=True, help_text="Last hand-off to a queue."
    )
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    step_executions = models.PositiveIntegerField(default=0, help_text="Step attempts so far.")
    last_event_seq = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("cancel_run", "Can cancel runs")]
        constraints = [
            models.UniqueConstraint(
                fields=["workflow", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="runs_run_unique_idempotency_key",
            ),
        ]
        indexes = [models.Index(fields=["status", "created_at"], name="runs_run_status_created")]

    def __str__(self) -> str:
        return f"Run {self.pk} of {self.workflow_id} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL_STATUSES


class StepRun(models.Model):
    """One step of one run: its latest attempt's status, input, output, logs and timings."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        RETRYING = "retrying", "Waiting to retry"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"
        CANCELLED = "cancelled", "Cancelled"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
    step_id = models.CharField(max_length=100)
    node_type = models.CharField(max_length=50)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempt = models.PositiveIntegerField(default=0)
    input = models.JSONField(
        null=True, blank=True, help_text="Config after expressions were resolved."
    )
    output = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    logs = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["run", "id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "step_id"], name="runs_steprun_unique_step")
        ]

    def __str__(self) -> str:
        return f"{self.step_id} ({self.status})"


class RunEvent(models.Model):
    """Append-only log of everything that happened to a run, numbered from 1 per run."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=50)
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["run", "seq"], name="runs_runevent_unique_seq")
        ]

    def __str__(self) -> str:
        return f"{self.run_id}#{self.seq} {self.type}"
