"""Acceptance 6: hostile and malformed requests to every endpoint get a 4xx JSON error and
change nothing. Each generated request carries at least one defect (and often several), so
none of them may start, cancel or alter anything."""

from __future__ import annotations

import json
import time
from urllib.parse import quote

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.openapi import DOCUMENT
from api.signatures import sign
from api.tokens import create_token
from runs.models import Run, RunEvent, StepRun
from tests.api.helpers import assert_matches_openapi
from workflows.models import WebhookTrigger

pytestmark = pytest.mark.django_db

EXAMPLES = 2100
SECRET = "whsec_property"
API_BODY_LIMIT = 4096
WEBHOOK_BODY_LIMIT = 2048

# What each endpoint can get wrong, besides the method.
DEFECTS = {
    "list": ["auth", "query"],
    "start": [
        "auth",
        "query",
        "path",
        "json",
        "shape",
        "unknown",
        "types",
        "schema",
        "media",
        "huge",
        "unstorable",
        "idem",
    ],
    "detail": ["auth", "query", "path"],
    "events": ["auth", "query", "path", "after", "limit"],
    "cancel": ["auth", "query", "path", "json", "shape", "unknown", "media", "huge", "final"],
    "open_hook": [
        "query",
        "path",
        "json",
        "shape",
        "schema",
        "media",
        "huge",
        "unstorable",
        "delivery",
    ],
    "signed_hook": ["query", "json", "schema", "media", "huge", "signature", "delivery"],
    "openapi": [],
    "junk": [],
}
ALLOWED = {
    "list": "GET",
    "start": "POST",
    "detail": "GET",
    "events": "GET",
    "cancel": "POST",
    "open_hook": "POST",
    "signed_hook": "POST",
    "openapi": "GET",
    "junk": None,
}
TEMPLATES = {
    "list": "/api/workflows",
    "start": "/api/workflows/{slug}/runs",
    "detail": "/api/runs/{run_id}",
    "events": "/api/runs/{run_id}/events",
    "cancel": "/api/runs/{run_id}/cancel",
    "open_hook": "/api/webhooks/{token}",
    "signed_hook": "/api/webhooks/{token}",
    "openapi": "/api/openapi.json",
}

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)
latin1_text = st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=40)
unstorable_strings = st.sampled_from(["\x00", "a\x00b", "\ud800", "x\udfff"])


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@st.composite
def hostile_requests(draw, world):
    endpoint = draw(st.sampled_from(sorted(DEFECTS)))
    choices = ["method", *DEFECTS[endpoint]]
    if endpoint == "junk":
        defects = {"junk"}
    else:
        defects = set(draw(st.lists(st.sampled_from(choices), min_size=1, max_size=3)))
    request = {
        "method": ALLOWED[endpoint] or "GET",
        "headers": {},
        "query": "",
        "content_type": "application/json",
        "endpoint": endpoint,
        "defects": sorted(defects),
    }
    input_value: dict = {"count": 1}
    body_value: object = {"input": input_value} if endpoint == "start" else {}
    if endpoint.endswith("hook"):
        body_value = input_value

    # The resource in the path.
    slug, run_id, token = "numbers", world["queued_run"], world["open_token"]
    if endpoint == "signed_hook":
        token = world["signed_token"]
    if "path" in defects:
        slug = draw(st.text(min_size=1, max_size=120).filter(lambda s: s != "numbers"))
        run_id = draw(st.integers(min_value=10**6, max_value=10**30) | st.just(2**63 - 1))
        token = draw(st.text(min_size=1, max_size=80).filter(lambda s: s not in world["tokens"]))
    if "final" in defects:
        run_id = world["final_run"]
    paths = {
        "list": "/api/workflows",
        "start": f"/api/workflows/{quote(slug, safe='')}/runs",
        "detail": f"/api/runs/{run_id}",
        "events": f"/api/runs/{run_id}/events",
        "cancel": f"/api/runs/{run_id}/cancel",
        "open_hook": f"/api/webhooks/{quote(token, safe='')}",
        "signed_hook": f"/api/webhooks/{quote(token, safe='')}",
        "openapi": "/api/openapi.json",
        "junk": "/api/x-" + quote(draw(st.text(max_size=60)), safe="/"),
    }
    request["path"] = paths[endpoint]

    if "method" in defects:
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]
        request["method"] = draw(st.sampled_from([m for m in methods if m != ALLOWED[endpoint]]))
    if endpoint not in ("open_hook", "signed_hook", "openapi", "junk"):
        if "auth" in defects:
            header = draw(
                st.sampled_from(["missing", "revoked", "scope", "nobody"])
                | latin1_text.map(lambda t: "Bearer " + t)
                | latin1_text
            )
            if header != "missing":
                header = world["bad_tokens"].get(header, header)
                request["headers"]["Authorization"] = header
        else:
            request["headers"]["Authorization"] = f"Bearer {world['good_token']}"

    # The query string.
    if "query" in defects:
        name = draw(st.text(min_size=1, max_size=20).filter(lambda n: n not in ("after", "limit")))
        request["query"] = f"{quote(name)}={quote(draw(st.text(max_size=20)))}"
    if "after" in defects:
        bad = draw(
            st.sampled_from(["-1", "x", "1.5", "", " ", "1e3", "99999999999999999999"])
            | st.text(max_size=10).filter(lambda t: not t.strip().isdigit())
        )
        request["query"] = f"after={quote(bad)}"
    if "limit" in defects:
        bad = draw(st.sampled_from(["0", "1001", "-5", "ten", "10&limit=20"]))
        request["query"] = f"limit={bad}"

    # The body.
    if "unknown" in defects:
        body_value = {
            **body_value,
            draw(st.text(min_size=1).filter(lambda k: k != "input")): draw(json_values),
        }
    if "types" in defects:
        body_value = {"input": draw(json_values.filter(lambda v: not isinstance(v, dict)))}
    if "schema" in defects:
        broken = {
            **input_value,
            draw(st.text(min_size=1).filter(lambda k: k not in ("count", "label"))): draw(
                json_values
            ),
        }
        broken["count"] = draw(st.none() | st.text() | st.integers(max_value=0) | st.just(1))
        body_value = {"input": broken} if endpoint == "start" else broken
    if "shape" in defects:
        body_value = draw(
            json_values.filter(lambda v: not isinstance(v, dict)) | st.just(_nested(100))
        )
    if "unstorable" in defects:
        bad = draw(unstorable_strings)
        body_value = (
            {"input": {"count": 1, "label": bad}}
            if endpoint == "start"
            else {"count": 1, "label": bad}
        )
    body = json.dumps(body_value).encode()
    if "json" in defects:
        body = draw(
            st.binary(min_size=1, max_size=200).filter(_not_json_object)
            | st.sampled_from(
                [
                    b"{",
                    b'{"input": NaN}',
                    b"{'input': {}}",
                    b'{"input": {}',
                    b"\xff\xfe{}",
                    b"[" * 5000 + b"]" * 5000,
                ]
            )
        )
    if "huge" in defects:
        body = json.dumps({"input": {"count": 1, "label": "x" * (API_BODY_LIMIT + 10)}}).encode()
    if "media" in defects:
        request["content_type"] = draw(
            st.sampled_from(
                [
                    "text/plain",
                    "application/x-www-form-urlencoded",
                    "multipart/form-data; boundary=x",
                    "application/xml",
                    "application/json; charset=latin-1",
                    "application/jsonx",
                ]
            )
        )
        if not body.strip():
            body = b'{"input": {"count": 1}}'
    request["body"] = body

    # Headers of the start endpoint and the webhooks.
    if "idem" in defects:
        request["headers"]["Idempotency-Key"] = draw(
            st.sampled_from(["", " ", "a b", "k" * 129, "é", "tab\tkey"])
            | st.text(min_size=130, max_size=200)
        )
    if "delivery" in defects:
        request["headers"]["X-Appstrate-Delivery"] = draw(
            st.sampled_from(["", "a b", "d" * 200, "ü"])
        )
    if endpoint == "signed_hook":
        now = int(time.time())
        headers = {
            "X-Appstrate-Timestamp": str(now),
            "X-Appstrate-Signature": sign(SECRET, now, body),
        }
        if "signature" in defects:
            headers = draw(
                st.sampled_from(
                    [
                        {},
                        {"X-Appstrate-Timestamp": str(now)},
                        {**headers, "X-Appstrate-Signature": sign("wrong", now, body)},
                        {**headers, "X-Appstrate-Timestamp": str(now - 301)},
                        {
                            "X-Appstrate-Timestamp": str(now - 400),
                            "X-Appstrate-Signature": sign(SECRET, now - 400, body),
                        },
                        {**headers, "X-Appstrate-Timestamp": "soon"},
                        {**headers, "X-Appstrate-Signature": draw(latin1_text)},
                    ]
                )
            )
        request["headers"].update(headers)
    return request


def _not_json_object(raw: bytes) -> bool:
    try:
        return not isinstance(json.loads(raw), dict)
    except (ValueError, RecursionError):
        return True


@pytest.fixture
def world(workflow, alice, bob, charlie, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = API_BODY_LIMIT
    settings.WEBHOOK_MAX_BODY_BYTES = WEBHOOK_BODY_LIMIT
    open_hook = WebhookTrigger.objects.create(workflow=workflow, name="open", token="open-token")
    signed = WebhookTrigger.objects.create(
        workflow=workflow, name="signed", token="signed-token", signing_secret=SECRET
    )
    from runs.services import cancel_run, start_run

    queued = start_run(workflow, input={"count": 1})
    final = cancel_run(start_run(workflow, input={"count": 2}))
    _, good = create_token(alice, name="good", scopes=["read", "run", "cancel"])
    revoked, revoked_text = create_token(alice, name="revoked", scopes=["read", "run", "cancel"])
    revoked.revoke()
    _, scopeless = create_token(alice, name="no scope", scopes=[])
    _, nobodys = create_token(charlie, name="no perms", scopes=["read", "run", "cancel"])
    return {
        "queued_run": queued.pk,
        "final_run": final.pk,
        "open_token": open_hook.token,
        "signed_token": signed.token,
        "tokens": {open_hook.token, signed.token},
        "good_token": good,
        "bad_tokens": {
            "revoked": f"Bearer {revoked_text}",
            "scope": f"Bearer {scopeless}",
            "nobody": f"Bearer {nobodys}",
        },
    }


def _state() -> tuple:
    return (
        list(Run.objects.order_by("pk").values_list("pk", "status", "input", "idempotency_key")),
        RunEvent.objects.count(),
        StepRun.objects.count(),
    )


def _check(client: Client, request: dict) -> None:
    path = request["path"] + ("?" + request["query"] if request["query"] else "")
    response = client.generic(
        request["method"],
        path,
        data=request["body"] if request["method"] not in ("GET", "HEAD") else b"",
        content_type=request["content_type"],
        headers=request["headers"],
    )
    assert 400 <= response.status_code < 500, (response.status_code, request)
    assert response["Content-Type"].startswith("application/json"), request
    if request["method"] == "HEAD":
        return  # a HEAD response carries no body
    error = response.json()["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str)
    assert isinstance(error["fields"], dict)
    template = TEMPLATES.get(request["endpoint"])
    method = request["method"].lower()
    if template and method in DOCUMENT["paths"][template] and "path" not in request["defects"]:
        assert_matches_openapi(response, request["method"], template)


# 2,100 requests take about half a minute on an idle machine; allow for a loaded CI box.
@pytest.mark.timeout(900)
def test_it_answers_every_hostile_request_with_a_4xx_json_error_and_changes_nothing(world):
    client = Client()
    before = _state()
    events = RunEvent.objects.count()
    sent = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(hostile_requests(world))
    def send(request):
        sent.append(request["endpoint"])
        _check(client, request)
        # Starting or cancelling a run always appends an event: a cheap check per request.
        assert RunEvent.objects.count() == events, request

    send()
    assert len(sent) >= 2000
    # Nothing was started, cancelled or changed by any of them.
    assert _state() == before
    # Every endpoint was exercised a fair share of the time.
    assert {endpoint: sent.count(endpoint) > 50 for endpoint in DEFECTS} == dict.fromkeys(
        DEFECTS, True
    )
