"""The console's system page: tier and adapters, queue depth, executors and workers, failures.

Every probe here is bounded in time: an unreachable broker shows as such, it never hangs the
page.
"""

from __future__ import annotations

import concurrent.futures
import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Max, Min
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from infra.registry import get_mode
from infra.services import probe_all
from runs.models import Run

logger = logging.getLogger("infra")

CELERY_PING_SECONDS = 1.0
RECENT_FAILURES = 10
_ping_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="ping")


def live_executors(now=None) -> list[dict[str, Any]]:
    """Owners of running runs with their last heartbeat, and whether it is recent enough."""
    now = now or timezone.now()
    stale_after = timedelta(seconds=settings.ORPHAN_AFTER_SECONDS)
    rows = (
        Run.objects.filter(status=Run.Status.RUNNING)
        .exclude(owner="")
        .values("owner")
        .annotate(runs=Count("id"), last_heartbeat=Max("heartbeat_at"))
        .order_by("owner")
    )
    return [
        {
            **row,
            "alive": bool(row["last_heartbeat"] and now - row["last_heartbeat"] <= stale_after),
        }
        for row in rows
    ]


def celery_workers() -> dict[str, Any]:
    """`celery inspect ping`, bounded: {"ok": bool, "workers": [names], "detail": str}."""
    if get_mode().executor != "celery":
        return {"ok": True, "workers": [], "detail": "not used at this tier"}

    def ping() -> dict:
        from appstrate.celery import app

        return app.control.inspect(timeout=CELERY_PING_SECONDS).ping() or {}

    future = _ping_pool.submit(ping)
    try:
        replies = future.result(timeout=CELERY_PING_SECONDS + 1.5)
    except concurrent.futures.TimeoutError:
        return {"ok": False, "workers": [], "detail": "no answer from the broker in time"}
    except Exception as exc:  # a broker error is a fact to show, not a page crash
        logger.warning("celery ping failed: %s", exc)
        return {"ok": False, "workers": [], "detail": f"{type(exc).__name__}: {exc}"[:200]}
    workers = sorted(replies)
    detail = f"{len(workers)} worker(s) answered" if workers else "no worker answered"
    return {"ok": bool(workers), "workers": workers, "detail": detail}


def system_status() -> dict[str, Any]:
    now = timezone.now()
    hour_ago = now - timedelta(hours=1)
    queued = Run.objects.filter(status=Run.Status.QUEUED).aggregate(
        depth=Count("id"), oldest=Min("created_at")
    )
    per_status = dict(
        Run.objects.filter(created_at__gte=hour_ago)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    failures = (
        Run.objects.filter(status__in=[Run.Status.FAILED, Run.Status.TIMED_OUT])
        .select_related("workflow")
        .order_by("-finished_at", "-id")[:RECENT_FAILURES]
    )
    mode = get_mode()
    return {
        "mode": mode,
        "ports": mode.ports(),
        "probes": probe_all(),
        "queue_depth": queued["depth"],
        "oldest_queued": queued["oldest"],
        "executors": live_executors(now),
        "celery": celery_workers(),
        "last_hour": [
            (label, value, per_status.get(value, 0)) for value, label in Run.Status.choices
        ],
        "last_hour_total": sum(per_status.values()),
        "failures": [
            {
                "run": run,
                "reason": (run.error or "").strip().splitlines()[0][:200] if run.error else "",
            }
            for run in failures
        ],
        "now": now,
    }


def system_page(request: HttpRequest, site: Any) -> HttpResponse:
    if not (request.user.has_perm("runs.view_run") or request.user.has_perm("runs.change_run")):
        raise PermissionDenied
    context = {**site.each_context(request), "title": "System", **system_status()}
    return TemplateResponse(request, "admin/system.html", context)
