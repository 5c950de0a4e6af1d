from django.http import JsonResponse
from django.views.decorators.cache import never_cache

from infra.services import probe_all


@never_cache
def healthz(request):
    """The process answers. Nothing else is checked, so an orchestrator restarts only a dead one."""
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request):
    """Every service this tier uses answers; 503 naming what is down otherwise."""
    probes = probe_all()
    body = {
        "status": "ok" if all(p.ok for p in probes) else "unavailable",
        "services": {p.service: {"ok": p.ok, "adapter": p.adapter} for p in probes},
        "down": [p.service for p in probes if not p.ok],
    }
    return JsonResponse(body, status=200 if not body["down"] else 503)
