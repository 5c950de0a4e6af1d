"""The tier 2+ executor: one Celery task per run on the Redis broker."""

from __future__ import annotations

import functools
import logging

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from kombu.exceptions import KombuError, OperationalError

from infra.executors.base import Executor

logger = logging.getLogger("infra")


class CeleryExecutor(Executor):
    """Publishes `runs.execute_run(run_id)` to the queue the workflow's definition names.

    Publishing never retries and never waits long (short socket timeouts in settings): when
    Redis is down the run is left with no `dispatched_at`, and `runs.sweeps` dispatches it
    again once the broker answers.
    """

    dispatches_messages = True

    def submit(self, run_id: int) -> None:
        self.dispatch(run_id)

    def submit_new(self, run_id: int, *, definition: dict, dispatched_at: object) -> None:
        if dispatched_at is None:
            self.dispatch(run_id)
            return
        # The row was inserted with its dispatched_at: no statement to stamp it. A process that
        # dies before publishing leaves the run to the sweep's redispatch of stale stamps.
        self._publish(run_id, queue_of_definition(definition), dispatched_at)

    def dispatch(self, run_id: int) -> bool:
        """Publish the run's task; False when there is no such run or the broker is down."""
        stamp = timezone.now()
        version_id = _mark_dispatched(run_id, stamp)
        if version_id is None:
            return False
        return self._publish(run_id, queue_of_version(version_id), stamp)

    def _publish(self, run_id: int, queue: str, stamp: object) -> bool:
        from runs.tasks import execute_run

        try:
            execute_run.apply_async((run_id,), queue=queue, retry=False)
        except (KombuError, OperationalError, OSError) as exc:
            logger.warning("Run %s stays queued: the broker is unreachable (%s)", run_id, exc)
            _unmark_dispatched(run_id, stamp)
            return False
        return True


def _mark_dispatched(run_id: int, stamp) -> int | None:
    """Stamp `dispatched_at` and learn the run's version in one statement."""
    from runs.models import Run

    table = Run._meta.db_table
    own_transaction = not connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql" and own_transaction:
            # Losing this stamp in a database crash only means one more dispatch by the sweep
            # (harmless: a run executes only once it is claimed), so skip waiting for the flush.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET dispatched_at = %s WHERE id = %s RETURNING version_id",
                [stamp, run_id],
            )
            row = cursor.fetchone()
    return row[0] if row else None


def _unmark_dispatched(run_id: int, stamp) -> None:
    from runs.models import Run

    # Only our own stamp: a concurrent dispatch that succeeded keeps its mark.
    Run.objects.filter(pk=run_id, dispatched_at=stamp).update(dispatched_at=None)


@functools.lru_cache(maxsize=1024)
def queue_of_version(version_id: int) -> str:
    """The Celery queue a workflow version names (policy `queue`). Versions never change."""
    from workflows.models import WorkflowVersion

    queue = (
        WorkflowVersion.objects.filter(pk=version_id)
        .values_list("definition__policies__queue", flat=True)
        .first()
    )
    return queue or settings.CELERY_TASK_DEFAULT_QUEUE


def queue_of_definition(definition: dict) -> str:
    """The queue a definition names, without a query."""
    return (definition.get("policies") or {}).get("queue") or settings.CELERY_TASK_DEFAULT_QUEUE
