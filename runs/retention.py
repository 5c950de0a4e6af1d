"""Retention: delete old finished runs with their steps and events (manage.py pruneruns).

Per workflow, a finished top-level run is pruned when it is older than the retention days or
beyond the newest retention count. `policies.retention` in the workflow's current definition
overrides the settings RUNS_RETENTION_DAYS / RUNS_RETENTION_COUNT; null (or 0 in settings)
means no limit. Active runs are never touched; sub-workflow runs go with their parent run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import router, transaction
from django.db.models.deletion import Collector
from django.utils import timezone

from runs.models import Run, RunEvent, StepRun
from workflows.models import Workflow

BATCH_SIZE = 500


@dataclass(frozen=True)
class Retention:
    days: int | None
    count: int | None


@dataclass
class PruneReport:
    deleted: Counter = field(default_factory=Counter)  # model label -> rows
    workflows: int = 0  # workflows that had something to prune

    @property
    def runs(self) -> int:
        return self.deleted[Run._meta.label]

    def summary(self, *, dry_run: bool) -> str:
        verb = "Would prune" if dry_run else "Pruned"
        return (
            f"{verb} {self.runs} runs ({self.deleted[StepRun._meta.label]} steps, "
            f"{self.deleted[RunEvent._meta.label]} events) in {self.workflows} workflows."
        )


def retention_for(workflow: Workflow) -> Retention:
    definition = workflow.current_version.definition if workflow.current_version else {}
    policy = (definition.get("policies") or {}).get("retention") or {}
    # A key present with null means "no limit"; a missing key falls back to the settings.
    days = policy.get("days", settings.RUNS_RETENTION_DAYS or None)
    count = policy.get("count", settings.RUNS_RETENTION_COUNT or None)
    return Retention(days=days, count=count)


def expired_run_ids(workflow: Workflow, retention: Retention) -> list[int]:
    """Ids of the workflow's finished top-level runs that the retention no longer keeps."""
    finished = Run.objects.filter(
        workflow=workflow, status__in=Run.FINAL_STATUSES, parent_run__isnull=True
    )
    expired: set[int] = set()
    if retention.days is not None:
        cutoff = timezone.now() - timedelta(days=retention.days)
        expired.update(finished.filter(created_at__lt=cutoff).values_list("pk", flat=True))
    if retention.count is not None:
        beyond = finished.order_by("-created_at", "-pk")[retention.count :]
        expired.update(beyond.values_list("pk", flat=True))
    return sorted(expired)


def _count_deletion(ids: list[int]) -> Counter:
    """What deleting these runs would delete, cascades included, as Django would do it."""
    collector = Collector(using=router.db_for_write(Run))
    collector.collect(Run.objects.filter(pk__in=ids))
    counts = Counter({model._meta.label: len(rows) for model, rows in collector.data.items()})
    for queryset in collector.fast_deletes:
        counts[queryset.model._meta.label] += queryset.count()
    return counts


def prune_runs(*, dry_run: bool = False, workflows=None) -> PruneReport:
    """Delete (or, with dry_run, count) every run the retention rules no longer keep."""
    report = PruneReport()
    for workflow in workflows if workflows is not None else Workflow.objects.all():
        ids = expired_run_ids(workflow, retention_for(workflow))
        if not ids:
            continue
        report.workflows += 1
        for start in range(0, len(ids), BATCH_SIZE):
            batch = ids[start : start + BATCH_SIZE]
            if dry_run:
                report.deleted.update(_count_deletion(batch))
                continue
            with transaction.atomic():
                # Status re-checked at delete time: only ever delete runs that are final.
                _total, per_model = Run.objects.filter(
                    pk__in=batch, status__in=Run.FINAL_STATUSES
                ).delete()
            report.deleted.update(per_model)
    return report
