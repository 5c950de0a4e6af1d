"""The tier 2+ executor: one Celery task per run on the Redis broker."""

from __future__ import annotations

import logging

from django.conf import settings
from django.utils import timezone
from kombu.exceptions import KombuError, OperationalError

from infra.executors.base import Executor

logger = logging.getLogger("infra")


class CeleryExecutor(Executor):
    """Publishes `runs.execute_run(run_id)` to the queue the workflow's definition names.

    Publishing never retries and never waits long (short socket timeouts in settings): when
    Redis is down the run stays `queued` with no `dispatched_at`, and `runs.sweeps` dispatches
    it again once the broker answers.
    """

    def submit(self, run_id: int) -> None:
        self.dispatch(run_id)

    def dispatch(self, run_id: int) -> bool:
        """Publish the run's task; record the hand-off. False when the broker is unreachable."""
        from runs.models import Run
        from runs.tasks import execute_run

        queue = queue_for(run_id)
        if queue is None:
            return False
        try:
            execute_run.apply_async((run_id,), queue=queue, retry=False)
        except (KombuError, OperationalError, OSError) as exc:
            logger.warning("Run %s stays queued: the broker is unreachable (%s)", run_id, exc)
            return False
        Run.objects.filter(pk=run_id).update(dispatched_at=timezone.now())
        return True


def queue_for(run_id: int) -> str | None:
    """The Celery queue named by the run's workflow version (policy `queue`); None if no run."""
    from runs.models import Run

    row = (
        Run.objects.filter(pk=run_id)
        .values_list("version__definition__policies__queue", flat=True)
        .first()
    )
    if row is None and not Run.objects.filter(pk=run_id).exists():
        return None
    return row or settings.CELERY_TASK_DEFAULT_QUEUE
