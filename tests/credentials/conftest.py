import base64

import pytest

from credentials import services


def key_entry(key_id: str, byte: int) -> str:
    """A deterministic test key: 32 copies of `byte`."""
    return f"{key_id}:{base64.b64encode(bytes([byte]) * 32).decode()}"


K1 = key_entry("k1", 1)
K2 = key_entry("k2", 2)


@pytest.fixture
def key_ring_k1(settings):
    settings.CREDENTIALS_KEYS = K1
    return settings


@pytest.fixture
def github_token(db, key_ring_k1):
    """A bearer token that the workflow 'sync-issues' may send to api.github.test."""
    return services.create_credential(
        name="github",
        type="bearer_token",
        secrets={"token": "ghp_canary_0123456789abcdef"},
        allowed_hosts=["api.github.test"],
        allowed_workflows=["sync-issues"],
    )


class EchoServer:
    """A real HTTP server on 127.0.0.1 that records each request's headers.

    GET /echo answers 200 with the request headers as JSON; /protected answers 401 unless
    `expected_auth` matches the Authorization header; /redirect?to=URL answers 302 to URL.
    """

    def __init__(self, tls_context=None) -> None:
        import http.server
        import threading

        self.requests: list[dict] = []
        self.expected_auth = ""
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                import json
                from urllib.parse import parse_qs, urlsplit

                parts = urlsplit(self.path)
                headers = dict(self.headers.items())
                server.requests.append({"path": parts.path, "headers": headers})
                if parts.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", parse_qs(parts.query)["to"][0])
                    self.end_headers()
                    return
                status = 200
                if (
                    parts.path == "/protected"
                    and headers.get("Authorization") != server.expected_auth
                ):
                    status = 401
                body = json.dumps({"headers": headers}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # keep test output quiet
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.scheme = "http"
        if tls_context is not None:
            self.httpd.socket = tls_context.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.port = self.httpd.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.host}{path}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def echo_server():
    server = EchoServer()
    try:
        yield server
    finally:
        server.stop()
