"""The credential sidecar: a small HTTP forward proxy, the only way out of a run container.

A tier 3 `script` container sits on an internal Docker network whose only other member is this
proxy. For a plain-HTTP request whose host a credential allows, the proxy adds that
credential's headers; the container never holds the secret. HTTPS (CONNECT) is tunnelled
untouched: nothing can be added inside TLS. A script that needs an authenticated HTTPS API
requests `http://host/...` with the header `X-Appstrate-Scheme: https`, and the proxy makes the
upstream call over TLS. Private, loopback and link-local addresses are refused unless the
workflow allows the private network.

Standard library only, plus `credentials.hosts` (shipped beside it into the container), so it
runs in the plain run image: `python3 sidecar.py CONFIG.json`. Config:
{"port": 3128, "allow_private_network": false, "clients": ["172.20.0.0/16"],
 "credentials": [{"name": "...", "hosts": ["api.example.com"], "headers": {"Authorization": "..."}}]}
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import select
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from credentials.hosts import host_allowed

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}
SCHEME_HEADER = "x-appstrate-scheme"
MAX_BODY_BYTES = 32 * 1024 * 1024
UPSTREAM_TIMEOUT_SECONDS = 60
CHUNK = 64 * 1024


class ProxyConfig:
    def __init__(self, raw: dict) -> None:
        self.port = int(raw.get("port", 3128))
        self.allow_private_network = bool(raw.get("allow_private_network", False))
        # Who may use the proxy: the run's internal network only. The sidecar also sits on the
        # egress network, where other containers must not borrow its credentials.
        self.clients = [ipaddress.ip_network(cidr) for cidr in raw.get("clients", [])]
        self.credentials = [
            (entry["name"], tuple(entry["hosts"]), dict(entry["headers"]))
            for entry in raw.get("credentials", [])
        ]

    def admits(self, client_ip: str) -> bool:
        if not self.clients:
            return True
        address = ipaddress.ip_address(client_ip)
        return any(address in network for network in self.clients)

    def headers_for(self, netloc: str) -> tuple[dict[str, str], list[str]]:
        """The headers of every credential that allows `netloc`, and their names."""
        added: dict[str, str] = {}
        names: list[str] = []
        for name, hosts, headers in self.credentials:
            if host_allowed(netloc, hosts):
                added.update(headers)
                names.append(name)
        return added, names


def address_refusal(host: str, port: int, allow_private: bool) -> str | None:
    """Why the proxy must not connect to host:port, or None. Checks every resolved address,
    so a public name that resolves to a private address is refused too."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"cannot resolve {host}: {exc}"
    if allow_private:
        return None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not address.is_global:
            return f"{host} resolves to the non-public address {address}"
    return None


class ProxyHandler(BaseHTTPRequestHandler):
    server_version = "appstrate-sidecar"
    protocol_version = "HTTP/1.1"
    config: ProxyConfig  # set on the subclass made by make_server()

    def log_message(self, format: str, *args) -> None:
        # Request lines only (never headers, which carry the credential), to stderr.
        sys.stderr.write("sidecar: " + (format % args) + "\n")

    def _refuse(self, status: int, message: str) -> None:
        body = (message + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def do_CONNECT(self) -> None:
        host, _, port = self.path.rpartition(":")
        if not host or not port.isdigit():
            return self._refuse(400, "CONNECT needs host:port")
        host = host.strip("[]")
        refusal = address_refusal(host, int(port), self.config.allow_private_network)
        if refusal:
            return self._refuse(403, f"sidecar refused: {refusal}")
        try:
            upstream = socket.create_connection((host, int(port)), timeout=10)
        except OSError as exc:
            return self._refuse(502, f"sidecar could not connect to {self.path}: {exc}")
        self.send_response(200, "Connection established")
        self.end_headers()
        self.close_connection = True
        _relay(self.connection, upstream)

    def _forward(self) -> None:
        url = urlsplit(self.path)
        if url.scheme != "http" or not url.hostname:
            return self._refuse(400, "send absolute http:// URLs through the proxy")
        scheme = self.headers.get(SCHEME_HEADER, "http").strip().lower()
        if scheme not in ("http", "https"):
            return self._refuse(400, f"{SCHEME_HEADER} must be http or https")
        port = url.port or (443 if scheme == "https" else 80)
        refusal = address_refusal(url.hostname, port, self.config.allow_private_network)
        if refusal:
            return self._refuse(403, f"sidecar refused: {refusal}")
        body = self._read_body()
        if body is None:
            return None
        headers = {
            key: value
            for key, value in self.headers.items()
            if key.lower() not in HOP_BY_HOP and key.lower() != SCHEME_HEADER
        }
        added, _names = self.config.headers_for(url.netloc)
        headers.update(added)
        headers["Connection"] = "close"
        connection_class = (
            http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        )
        upstream = connection_class(url.hostname, port, timeout=UPSTREAM_TIMEOUT_SECONDS)
        target = url.path or "/"
        if url.query:
            target += "?" + url.query
        try:
            upstream.request(self.command, target, body=body or None, headers=headers)
            response = upstream.getresponse()
        except OSError as exc:
            return self._refuse(502, f"sidecar could not reach {url.netloc}: {exc}")
        self._send_upstream_response(response)
        upstream.close()
        return None

    def _read_body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding"):
            self._refuse(411, "send a Content-Length; chunked bodies are not proxied")
            return None
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._refuse(413, f"request bodies are limited to {MAX_BODY_BYTES} bytes")
            return None
        return self.rfile.read(length) if length else b""

    def _send_upstream_response(self, response: http.client.HTTPResponse) -> None:
        self.send_response(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                self.send_header(key, value)
        # The body is streamed as it arrives; its end is the end of the connection.
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if self.command == "HEAD":
            return
        while chunk := response.read(CHUNK):
            self.wfile.write(chunk)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _forward


def _relay(client: socket.socket, upstream: socket.socket) -> None:
    sockets = [client, upstream]
    try:
        while True:
            readable, _, _ = select.select(sockets, [], [], 300)
            if not readable:
                return
            for sock in readable:
                data = sock.recv(CHUNK)
                if not data:
                    return
                (upstream if sock is client else client).sendall(data)
    except OSError:
        return
    finally:
        upstream.close()


class ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    config: ProxyConfig

    def verify_request(self, request, client_address) -> bool:
        if self.config.admits(client_address[0]):
            return True
        sys.stderr.write(f"sidecar: refused a connection from {client_address[0]}\n")
        return False


def make_server(config: ProxyConfig, host: str = "0.0.0.0") -> ThreadingHTTPServer:
    handler = type("ConfiguredProxyHandler", (ProxyHandler,), {"config": config})
    server = ProxyServer((host, config.port), handler)
    server.config = config
    return server


def serve_in_thread(config: ProxyConfig, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Start the proxy on a background thread (for tests and the host-side checks)."""
    server = make_server(config, host)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(config_path: str) -> None:
    with open(config_path) as handle:
        config = ProxyConfig(json.load(handle))
    server = make_server(config)
    # The adapter waits for this line before it starts the script container.
    print("sidecar ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1])
