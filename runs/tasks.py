"""Celery tasks (tier 2+): thin wrappers around the same services the tier 0 executor calls."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_process_init, worker_ready, worker_shutdown
from django.conf import settings
from django.db import connections

logger = logging.getLogger("runs")


def worker_executor_id() -> str:
    """The executor id of this worker pool process: the owner written on the runs it claims.

    One per pool process (prefork children each execute runs), so a run's owner names the exact
    process whose heartbeat must stay fresh; the random part tells a restarted worker that got
    the same pid from the dead one.
    """
    from runs.engine.claims import process_executor_id

    return f"celery@{process_executor_id()}"


@shared_task(name="runs.execute_run", acks_late=True, ignore_result=True)
def execute_run(run_id: int) -> None:
    # Only the id travels: the row may change while the message waits in the queue.
    from runs import services

    services.execute_run(run_id, executor_id=worker_executor_id())


@worker_ready.connect
def _sync_code_workflows_on_worker_start(**kwargs) -> None:
    # A worker deployed with new flows.py code registers its definitions before running them.
    try:
        from workflows.services import sync_code_workflows
    except ImportError:
        return
    try:
        sync_code_workflows()
    except Exception:
        logger.exception("sync_code_workflows failed at worker start")


@worker_process_init.connect
def _keep_database_connections(**kwargs) -> None:
    # Each run is one task: without this, Django would reconnect to PostgreSQL for every run.
    for connection in connections.all(initialized_only=False):
        if connection.vendor == "postgresql":
            connection.settings_dict["CONN_MAX_AGE"] = settings.WORKER_CONN_MAX_AGE


_sweeper = None


@worker_ready.connect
def _start_sweeping(**kwargs) -> None:
    # Stranded and orphaned runs are recovered wherever workers run, scheduler or not.
    global _sweeper
    seconds = settings.WORKER_SWEEP_SECONDS
    if seconds > 0:
        from workflows.scheduler import Scheduler

        _sweeper = Scheduler(tick_seconds=seconds, sweep_seconds=seconds, fire_schedules=False)
        _sweeper.start()


@worker_shutdown.connect
def _stop_sweeping(**kwargs) -> None:
    if _sweeper is not None:
        _sweeper.stop()
