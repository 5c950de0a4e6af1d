"""Rate limits on login, the API and webhooks, counted by django-ratelimit in the default cache.

The cache is per-process memory at tiers 0 and 1 (one serving process) and Redis from tier 2,
so every web process counts against the same limit. The rates are settings (from the
environment), read at request time so tests can lower them.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django_ratelimit.core import _split_rate, get_usage

from api.errors import error_response

GROUP_SETTINGS = {
    "api": "API_RATE_LIMIT",
    "webhook": "WEBHOOK_RATE_LIMIT",
    "login": "LOGIN_RATE_LIMIT",
}


def check_rate(request: HttpRequest, group: str) -> JsonResponse | None:
    """Count this request against `group`'s limit for the client's address; a 429 when over."""
    rate = getattr(settings, GROUP_SETTINGS[group])
    if not rate:
        return None
    usage = get_usage(request, group=f"appstrate.{group}", key="ip", rate=rate, increment=True)
    if usage is None or not usage["should_limit"]:
        return None
    _, period = _split_rate(rate)
    # time_left is -1 when the cache failed (django-ratelimit then limits): wait a whole period.
    retry_after = period if usage["time_left"] < 0 else max(1, usage["time_left"])
    return error_response(
        429,
        "rate_limited",
        f"Too many requests: the limit is {rate}. Retry after {retry_after} s.",
        headers={"Retry-After": str(retry_after)},
    )
