"""The credential sidecar's proxy rules, on the host (the Docker tests run it in a container)."""

import json
import socket
import urllib.error
import urllib.request

import pytest

from infra.runners.sidecar import ProxyConfig, serve_in_thread
from tests.tier3 import echo_server
from tests.tier3.creds import bearer
from tests.tls import self_signed_tls

SECRET = "s3cret-token-value"


@pytest.fixture
def echo():
    server = echo_server.start_in_thread()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _proxy(echo_host, *, hosts=None, allow_private=True, clients=("127.0.0.0/8",)):
    cred = bearer("api", SECRET, hosts if hosts is not None else [echo_host])
    config = ProxyConfig(
        {
            "port": 0,
            "allow_private_network": allow_private,
            "clients": list(clients),
            "credentials": [
                {
                    "name": cred.name,
                    "hosts": list(cred.allowed_hosts),
                    "headers": cred.apply_to_headers({}),
                }
            ],
        }
    )
    return serve_in_thread(config)


@pytest.fixture
def proxy_for(echo):
    started = []

    def start(**kwargs):
        server = _proxy(echo, **kwargs)
        started.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def _get(proxy_url, url, *, data=None, headers=None):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy_url}))
    request = urllib.request.Request(url, data=data, headers=headers or {})
    with opener.open(request, timeout=10) as response:
        return json.load(response)


def test_it_adds_the_credential_for_an_allowed_host(echo, proxy_for):
    seen = _get(proxy_for(), f"http://{echo}/data?x=1")
    assert seen["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert seen["path"] == "/data?x=1"


def test_it_sends_no_credential_to_another_host(echo, proxy_for):
    seen = _get(proxy_for(hosts=["api.example.com"]), f"http://{echo}/")
    assert "Authorization" not in seen["headers"]


def test_it_matches_the_port_of_an_allowlist_entry(echo, proxy_for):
    other_port = "127.0.0.1:1"
    seen = _get(proxy_for(hosts=[other_port]), f"http://{echo}/")
    assert "Authorization" not in seen["headers"]


def test_it_forwards_bodies_and_drops_proxy_headers(echo, proxy_for):
    seen = _get(
        proxy_for(),
        f"http://{echo}/submit",
        data=b'{"n": 1}',
        headers={"Proxy-Authorization": "Basic eA==", "X-Kept": "yes"},
    )
    assert seen["method"] == "POST"
    assert seen["body"] == '{"n": 1}'
    assert seen["headers"]["X-Kept"] == "yes"
    assert "Proxy-Authorization" not in seen["headers"]


def test_it_refuses_private_addresses_unless_allowed(echo, proxy_for):
    with pytest.raises(urllib.error.HTTPError) as refused:
        _get(proxy_for(allow_private=False), f"http://{echo}/")
    assert refused.value.code == 403
    assert b"non-public address" in refused.value.read()


def test_it_refuses_requests_that_are_not_absolute_http_urls(proxy_for):
    proxy = proxy_for()
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{proxy}/not-a-proxy-request", timeout=10)
    assert refused.value.code == 400


def test_it_tunnels_connect_without_adding_the_credential(echo, proxy_for):
    proxy_port = int(proxy_for().rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=10) as sock:
        sock.sendall(f"CONNECT {echo} HTTP/1.1\r\nHost: {echo}\r\n\r\n".encode())
        assert sock.recv(1024).startswith(b"HTTP/1.1 200")
        sock.sendall(f"GET /tunnel HTTP/1.1\r\nHost: {echo}\r\nConnection: close\r\n\r\n".encode())
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    seen = json.loads(response.split(b"\r\n\r\n", 1)[1])
    # Inside a tunnel (TLS in real use) nothing can be added: the credential stays out.
    assert seen["path"] == "/tunnel"
    assert "Authorization" not in seen["headers"]


def test_it_serves_only_clients_from_the_run_network(echo, proxy_for):
    # On the egress network, other containers must not borrow the credential.
    proxy = proxy_for(clients=["10.99.0.0/16"])
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        _get(proxy, f"http://{echo}/")


@pytest.fixture
def tls_echo(tmp_path, monkeypatch):
    """The echo server behind TLS with a certificate for 127.0.0.1 that the proxy trusts."""
    context, cert_path = self_signed_tls(tmp_path)
    # The proxy verifies upstream certificates against the default trust store: point it here.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_path))
    server = echo_server.start_in_thread(tls_context=context)
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_it_calls_upstream_over_tls_when_asked_and_adds_the_credential(tls_echo):
    server = _proxy(tls_echo)
    try:
        proxy = f"http://127.0.0.1:{server.server_address[1]}"
        seen = _get(proxy, f"http://{tls_echo}/secure", headers={"X-Appstrate-Scheme": "https"})
    finally:
        server.shutdown()
        server.server_close()
    assert seen["path"] == "/secure"
    assert seen["headers"]["Authorization"] == f"Bearer {SECRET}"
    # The instruction to the proxy is not passed on.
    assert "X-Appstrate-Scheme" not in seen["headers"]
