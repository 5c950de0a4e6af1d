import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from credentials.services import create_credential
from workflows.nodes.base import StepError, StepTimeout
from workflows.nodes.http import is_public_address
from workflows.nodes.registry import get_node_type

http_node = get_node_type("http")
ALLOW = {"allow_private_network": True}


class Handler(BaseHTTPRequestHandler):
    seen: list  # (method, path, headers) per request

    def log_message(self, *args):
        pass

    def _reply(self, status, body, content_type="application/json", headers=()):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        self.server.seen.append((self.command, self.path, dict(self.headers), body))
        path = self.path
        if path == "/json":
            self._reply(200, {"ok": True, "method": self.command})
        elif path == "/echo":
            self._reply(200, {"body": body, "type": self.headers.get("Content-Type")})
        elif path == "/text":
            self._reply(200, "plain words", content_type="text/plain")
        elif path.startswith("/loop/"):
            n = int(path.rsplit("/", 1)[1])
            self._reply(302, "", headers=[("Location", f"/loop/{n + 1}")])
        elif path == "/see-other":
            self._reply(303, "", headers=[("Location", "/json")])
        elif path.startswith("/to/"):  # /to/<host:port>/<path>: an absolute redirect
            target = path[len("/to/") :]
            self._reply(302, "", headers=[("Location", f"http://{target}")])
        elif path == "/slow":
            time.sleep(2)
            self._reply(200, {"late": True})
        elif path == "/error":
            self._reply(503, {"error": "down"})
        elif path == "/missing":
            self._reply(404, {"error": "no"})
        elif path == "/huge":
            self._reply(200, "x" * 2_100_000, content_type="text/plain")
        else:
            self._reply(404, {"error": "no route"})

    do_GET = do_POST = do_HEAD = do_PUT = _handle


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.seen = []
    httpd.handle_error = lambda request, address: None  # a client that timed out hung up
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def url(server, path):
    return f"http://127.0.0.1:{server.server_port}{path}"


def test_it_returns_status_headers_and_parsed_json(server, make_ctx):
    out = http_node.execute(make_ctx({"url": url(server, "/json")}, policies=ALLOW))
    assert out["status"] == 200
    assert out["json"] == {"ok": True, "method": "GET"}
    assert out["headers"]["content-type"] == "application/json"


def test_it_returns_text_bodies_as_body(server, make_ctx):
    out = http_node.execute(make_ctx({"url": url(server, "/text")}, policies=ALLOW))
    assert out["body"] == "plain words" and "json" not in out


def test_it_sends_a_json_body_and_headers(server, make_ctx):
    config = {
        "method": "POST",
        "url": url(server, "/echo"),
        "json": {"a": [1]},
        "headers": {"X-Trace": "t1"},
    }
    out = http_node.execute(make_ctx(config, policies=ALLOW))
    assert out["json"] == {"body": '{"a": [1]}', "type": "application/json"}
    assert server.seen[-1][2]["X-Trace"] == "t1"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_it_refuses_loopback_addresses_unless_the_workflow_allows_them(server, make_ctx, host):
    config = {"url": f"http://{host}:{server.server_port}/json"}
    with pytest.raises(StepError, match=r"refused: .* private or loopback") as caught:
        http_node.execute(make_ctx(config))
    assert caught.value.retryable is False
    assert server.seen == []  # nothing was sent


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata: link-local
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("::1", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),
        ("224.0.0.1", False),
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
    ],
)
def test_it_classifies_addresses(address, public):
    assert is_public_address(address) is public


def test_it_follows_redirects_itself_up_to_five_hops(server, make_ctx):
    config = {"url": url(server, f"/to/127.0.0.1:{server.server_port}/json")}
    out = http_node.execute(make_ctx(config, policies=ALLOW))
    assert out["json"]["ok"] is True
    with pytest.raises(StepError, match="more than 5 redirects"):
        http_node.execute(make_ctx({"url": url(server, "/loop/0")}, policies=ALLOW))
    assert len([s for s in server.seen if s[1].startswith("/loop/")]) == 6


def test_it_switches_to_get_after_a_303(server, make_ctx):
    config = {"method": "POST", "url": url(server, "/see-other"), "body": "data"}
    out = http_node.execute(make_ctx(config, policies=ALLOW))
    assert out["json"]["method"] == "GET"


def test_it_checks_every_redirect_hop_against_the_private_network_policy(
    server, make_ctx, monkeypatch
):
    # Every address here is loopback, so stand in for "a public first hop" by letting
    # 127.0.0.1 through: the redirect to localhost must still be refused on its own hop.
    from workflows.nodes import http as http_module

    original = http_module.resolve_host

    def first_host_counts_as_public(host, port, *, allow_private):
        return original(host, port, allow_private=allow_private or host == "127.0.0.1")

    monkeypatch.setattr(http_module, "resolve_host", first_host_counts_as_public)
    target = f"localhost:{server.server_port}/json"
    with pytest.raises(StepError, match="refused: 'localhost'"):
        http_node.execute(make_ctx({"url": url(server, f"/to/{target}")}))
    assert [s[1] for s in server.seen] == [f"/to/{target}"]


def test_it_drops_authorization_when_a_redirect_leaves_the_host(server, make_ctx):
    target = f"localhost:{server.server_port}/json"
    config = {"url": url(server, f"/to/{target}"), "headers": {"Authorization": "Bearer mine"}}
    http_node.execute(make_ctx(config, policies=ALLOW))
    first, second = server.seen
    assert first[2]["Authorization"] == "Bearer mine"
    assert "Authorization" not in second[2]


@pytest.mark.django_db
def test_it_applies_a_credential_only_on_hops_to_allowed_hosts(server, make_ctx):
    create_credential(
        name="api",
        type="bearer_token",
        secrets={"token": "tok-123456"},
        allowed_hosts=["127.0.0.1"],
        allowed_workflows=["wf"],
    )
    target = f"localhost:{server.server_port}/json"
    ctx = make_ctx(
        {"url": url(server, f"/to/{target}"), "credential": "api"}, policies=ALLOW, slug="wf"
    )
    assert http_node.execute(ctx)["json"]["ok"] is True
    first, second = server.seen
    assert first[2]["Authorization"] == "Bearer tok-123456"
    assert "Authorization" not in second[2]
    assert "tok-123456" in ctx.secrets


@pytest.mark.django_db
def test_it_fails_without_sending_when_the_credential_is_not_for_this_workflow(server, make_ctx):
    create_credential(
        name="api",
        type="bearer_token",
        secrets={"token": "tok-123456"},
        allowed_hosts=["127.0.0.1"],
        allowed_workflows=["other"],
    )
    ctx = make_ctx({"url": url(server, "/json"), "credential": "api"}, policies=ALLOW, slug="wf")
    with pytest.raises(StepError, match="may not use"):
        http_node.execute(ctx)
    assert server.seen == []


def test_it_fails_on_error_statuses_retryable_only_for_server_errors(server, make_ctx):
    with pytest.raises(StepError, match="HTTP 503") as caught:
        http_node.execute(make_ctx({"url": url(server, "/error")}, policies=ALLOW))
    assert caught.value.retryable is True
    with pytest.raises(StepError, match="HTTP 404") as caught:
        http_node.execute(make_ctx({"url": url(server, "/missing")}, policies=ALLOW))
    assert caught.value.retryable is False
    config = {"url": url(server, "/missing"), "fail_on_status": False}
    assert http_node.execute(make_ctx(config, policies=ALLOW))["status"] == 404


def test_it_times_out(server, make_ctx):
    config = {"url": url(server, "/slow"), "timeout_seconds": 0.3}
    with pytest.raises(StepTimeout):
        http_node.execute(make_ctx(config, policies=ALLOW))


def test_it_refuses_huge_responses(server, make_ctx):
    with pytest.raises(StepError, match="response larger than"):
        http_node.execute(make_ctx({"url": url(server, "/huge")}, policies=ALLOW))


def test_it_is_idempotent_only_for_get_and_head():
    assert http_node.is_idempotent({"url": "https://x"}) is True
    assert http_node.is_idempotent({"url": "https://x", "method": "HEAD"}) is True
    assert http_node.is_idempotent({"url": "https://x", "method": "POST"}) is False


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "url"),
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "/relative"}, "url"),
        ({"url": "http://example.com:99999/"}, "url"),
        ({"url": "https://example.com", "method": "BREW"}, "method"),
        ({"url": "https://example.com", "body": "a", "json": {}}, "body"),
        ({"url": "https://example.com", "body": {"a": 1}}, "body"),
        ({"url": "https://example.com", "headers": {"X": 1}}, "headers.X"),
        ({"url": "https://example.com", "timeout_seconds": 0}, "timeout_seconds"),
        ({"url": "https://example.com", "credential": ""}, "credential"),
        ({"url": "https://example.com", "verify": False}, "verify"),
    ],
)
def test_it_rejects_invalid_config(config, field):
    assert field in [f for f, _ in http_node.validate_config(config)]


def test_it_accepts_an_expression_for_the_url():
    assert http_node.validate_config({"url": "{{ input.url }}"}) == []


def test_it_fails_cleanly_when_an_expression_rendered_a_wrong_type(server, make_ctx):
    config = {"url": url(server, "/json"), "headers": ["not", "a", "map"]}
    with pytest.raises(StepError, match=r"config\.headers must be an object") as caught:
        http_node.execute(make_ctx(config, policies=ALLOW))
    assert caught.value.retryable is False
    with pytest.raises(StepError, match=r"config\.url must be an absolute"):
        http_node.execute(make_ctx({"url": "file:///etc/passwd"}, policies=ALLOW))
    assert server.seen == []
