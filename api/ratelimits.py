"""Rate limits on login, the API and webhooks, counted by django-ratelimit in the default cache.

The cache is per-process memory at tiers 0 and 1 (one serving process) and Redis from tier 2,
so every web process counts against the same limit. The rates are settings (from the
environment), read at request time so tests can lower them.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django_ratelimit.core import _split_rate, get_usage

from api.errors import error_response

logger = logging.getLogger("api")

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
    try:
        usage = get_usage(request, group=f"appstrate.{group}", key="ip", rate=rate, increment=True)
    except Exception as exc:  # the cache (Redis) is down: django-redis raises its own errors
        # Fail open: while Redis is away the API still starts runs (they wait in the database
        # until the broker is back), which matters more than counting requests.
        logger.warning("Rate limit %s not checked, the cache is unavailable: %s", group, exc)
        return None
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
