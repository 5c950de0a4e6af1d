"""Periodic sweeps that make sure nothing is lost between the database and the broker.

- Stranded runs: `queued` in the database but never handed to the broker (Redis was down when
  the run started) or handed over long ago and still waiting (the message was lost): dispatch
  them again. The re-dispatch is claimed by a conditional update of `dispatched_at`, so two
  sweepers never both publish a run; a duplicate message would be harmless anyway, since
  `execute_run` only executes a run it can claim.
- Orphaned runs: `running` whose owner stopped heartbeating. They are handed to a live executor,
  which continues them from their snapshot (completed steps never run again).

The tier 0/1 in-process executor reads queued runs from the database itself; these sweeps are
for executors that need a message (Celery). `manage.py runscheduler` runs them, and so does
every Celery worker's main process (WORKER_SWEEP_SECONDS; workflows.scheduler).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from infra.registry import get_executor
from runs.models import Run

logger = logging.getLogger("runs")

SWEEP_BATCH = 200


@dataclass(frozen=True)
class SweepResult:
    dispatched: int = 0
    orphans: int = 0
    broker_down: bool = False


def sweep_runs(now: datetime | None = None) -> SweepResult:
    """One pass of both sweeps; never raises because the broker is down."""
    executor = get_executor()
    if not hasattr(executor, "dispatch"):
        return SweepResult()
    now = now or timezone.now()
    dispatched, down = dispatch_stranded_runs(executor, now)
    orphans = 0 if down else dispatch_orphaned_runs(executor, now)
    return SweepResult(dispatched=dispatched, orphans=orphans, broker_down=down)


def dispatch_stranded_runs(executor, now: datetime) -> tuple[int, bool]:
    """Dispatch queued runs never delivered; returns (how many, whether the broker was down)."""
    # A grace period leaves runs that are being submitted right now to their own on_commit.
    fresh = now - timedelta(seconds=settings.DISPATCH_GRACE_SECONDS)
    stale = now - timedelta(seconds=settings.REDISPATCH_AFTER_SECONDS)
    candidates = list(
        Run.objects.filter(status=Run.Status.QUEUED, created_at__lt=fresh)
        .filter(Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=stale))
        .order_by("created_at")
        .values_list("pk", "dispatched_at")[:SWEEP_BATCH]
    )
    count = 0
    for run_id, last in candidates:
        claimed = Run.objects.filter(
            pk=run_id, status=Run.Status.QUEUED, dispatched_at=last
        ).update(dispatched_at=now)
        if not claimed:
            continue  # another sweeper took it, or it started meanwhile
        if not executor.dispatch(run_id):
            # dispatch() cleared the mark, so the next sweep retries; stop: the broker is down.
            return count, True
        count += 1
    if count:
        logger.info("Dispatched %d stranded queued run(s) again", count)
    return count, False


def orphaned_runs(now: datetime):
    """Running runs whose owner has not heartbeated within ORPHAN_AFTER_SECONDS."""
    cutoff = now - timedelta(seconds=settings.ORPHAN_AFTER_SECONDS)
    silent = Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    return Run.objects.filter(silent, status=Run.Status.RUNNING)


def dispatch_orphaned_runs(executor, now: datetime) -> int:
    """Hand orphaned runs to a live executor, once per orphaning (claimed by dispatched_at)."""
    cutoff = now - timedelta(seconds=settings.ORPHAN_AFTER_SECONDS)
    count = 0
    rows = orphaned_runs(now).values_list("pk", "owner", "dispatched_at")[:SWEEP_BATCH]
    for run_id, owner, last in list(rows):
        if last is not None and last > cutoff:
            continue  # already handed over recently; give the new executor time to claim it
        claimed = Run.objects.filter(
            pk=run_id, status=Run.Status.RUNNING, owner=owner, dispatched_at=last
        ).update(dispatched_at=now)
        if not claimed:
            continue
        logger.warning("Run %s lost its executor %s; handing it to a live one", run_id, owner)
        if not executor.dispatch(run_id):
            break  # the broker is down; the mark was cleared, the next sweep retries
        count += 1
    return count
