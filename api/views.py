"""JSON API views: thin wrappers that authenticate, parse, call api.services and serialise."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from api import services
from api.errors import ApiError, error_response, not_found
from api.models import ApiToken
from api.openapi import DOCUMENT
from api.parsing import (
    DB_INT_MAX,
    header_token,
    int_param,
    parse_json_object,
    query_params,
    read_body,
    validate_body,
)
from api.ratelimits import check_rate
from api.signatures import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from api.tokens import find_token
from runs.models import Run
from workflows.models import WebhookTrigger, Workflow

View = Callable[..., HttpResponse]
_BEARER = re.compile(r"Bearer ([\x21-\x7e]{1,200})", re.IGNORECASE)
_WEBHOOK_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def endpoint(*methods: str, group: str = "api") -> Callable[[View], View]:
    """Rate limit, allow only `methods`, and turn ApiError into its JSON response."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            limited = check_rate(request, group)
            if limited is not None:
                return limited
            if request.method not in methods:
                return error_response(
                    405,
                    "method_not_allowed",
                    f"Use {' or '.join(methods)}.",
                    headers={"Allow": ", ".join(methods)},
                )
            try:
                return view(request, *args, **kwargs)
            except ApiError as exc:
                return exc.response()

        # Tokens, not cookies, authenticate these requests, so there is no CSRF to guard.
        return csrf_exempt(never_cache(wrapper))

    return decorate


def authenticate(request: HttpRequest, scope: str, permission: str) -> ApiToken:
    """The request's live token, if it has `scope` and its user has `permission`."""
    header = request.headers.get("Authorization")
    challenge = {"WWW-Authenticate": 'Bearer realm="appstrate"'}
    if not header:
        raise ApiError(
            401, "unauthenticated", "Send Authorization: Bearer <token>.", headers=challenge
        )
    match = _BEARER.fullmatch(header.strip())
    token = find_token(match.group(1)) if match else None
    if token is None:
        raise ApiError(401, "invalid_token", "The token is unknown or revoked.", headers=challenge)
    if not token.has_scope(scope):
        raise ApiError(403, "insufficient_scope", f"The token lacks the {scope!r} scope.")
    if not token.user.has_perm(permission):
        raise ApiError(403, "permission_denied", f"Your account lacks the {permission} permission.")
    return token


def _get_run(run_id: int) -> Run:
    run = None
    if run_id <= DB_INT_MAX:
        run = (
            Run.objects.select_related("workflow", "version")
            .prefetch_related("steps")
            .filter(pk=run_id)
            .first()
        )
    if run is None:
        raise not_found(f"No run {run_id}.")
    return run


@endpoint("GET")
def list_workflows(request: HttpRequest) -> HttpResponse:
    authenticate(request, "read", "workflows.view_workflow")
    query_params(request, set())
    workflows = Workflow.objects.filter(retired=False).select_related("current_version")
    return JsonResponse({"workflows": [services.workflow_data(w) for w in workflows]})


@endpoint("POST")
def start_run(request: HttpRequest, slug: str) -> HttpResponse:
    token = authenticate(request, "run", "workflows.run_workflow")
    query_params(request, set())
    key = header_token(request, "Idempotency-Key")
    body = read_body(request, max_bytes=settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    data = validate_body("StartRunRequest", parse_json_object(request, body, optional=True))
    workflow = Workflow.objects.filter(slug=slug).first()
    if workflow is None:
        raise not_found(f"No workflow {slug!r}.")
    run, created = services.start_api_run(
        workflow, user=token.user, input=data.get("input", {}), idempotency_key=key
    )
    return JsonResponse(services.run_data(_get_run(run.pk)), status=201 if created else 200)


@endpoint("GET")
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    authenticate(request, "read", "runs.view_run")
    query_params(request, set())
    return JsonResponse(services.run_data(_get_run(run_id)))


@endpoint("GET")
def run_events(request: HttpRequest, run_id: int) -> HttpResponse:
    authenticate(request, "read", "runs.view_run")
    params = query_params(request, {"after", "limit"})
    after = int_param(params, "after", default=0, minimum=0, maximum=DB_INT_MAX)
    limit = int_param(params, "limit", default=100, minimum=1, maximum=1000)
    run = _get_run(run_id)
    return JsonResponse(services.events_after(run, after=after, limit=limit))


@endpoint("POST")
def cancel_run(request: HttpRequest, run_id: int) -> HttpResponse:
    token = authenticate(request, "cancel", "runs.cancel_run")
    query_params(request, set())
    body = read_body(request, max_bytes=settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    validate_body("CancelRunRequest", parse_json_object(request, body, optional=True))
    run = services.cancel_api_run(_get_run(run_id), user=token.user)
    return JsonResponse(services.run_data(_get_run(run.pk)))


@endpoint("POST", group="webhook")
def receive_webhook(request: HttpRequest, token: str) -> HttpResponse:
    trigger = None
    if _WEBHOOK_TOKEN.fullmatch(token):
        trigger = (
            WebhookTrigger.objects.select_related("workflow")
            .filter(token=token, enabled=True)
            .first()
        )
    if trigger is None:
        raise not_found("No such webhook.")
    query_params(request, set())
    body = read_body(request, max_bytes=settings.WEBHOOK_MAX_BODY_BYTES)
    delivery_id = header_token(request, "X-Appstrate-Delivery")
    signature = None
    if trigger.signing_secret:
        # Checked before the body is parsed: unsigned content is never looked at.
        signature = verify(
            trigger.signing_secret,
            timestamp=request.headers.get(TIMESTAMP_HEADER),
            signature=request.headers.get(SIGNATURE_HEADER),
            body=body,
            tolerance_seconds=settings.WEBHOOK_SIGNATURE_TOLERANCE_SECONDS,
        )
    data = parse_json_object(request, body, optional=True)
    run, created = services.start_webhook_run(
        trigger, input=data, delivery_id=delivery_id, signature=signature
    )
    return JsonResponse({"run_id": run.pk, "status": run.status}, status=201 if created else 200)


@endpoint("GET")
def openapi_document(request: HttpRequest) -> HttpResponse:
    return JsonResponse(DOCUMENT)


@endpoint("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
def unknown_endpoint(request: HttpRequest, rest: str = "") -> HttpResponse:
    raise not_found("No such API endpoint. See /api/openapi.json.")
