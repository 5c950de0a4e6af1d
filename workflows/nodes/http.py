"""`http`: one HTTP request, redirects followed hop by hop, private addresses refused.

Each hop resolves the host, refuses loopback/private/link-local/reserved addresses unless the
workflow's policy `allow_private_network` is true, then connects to exactly the address it
checked (so a second DNS answer cannot swap in a private one). A credential's headers go only
to hosts the credential allows, checked again on every hop.

Config: `{"method": "GET", "url": "https://...", "headers": {...}, "body": "text" | "json":
<any JSON>, "timeout_seconds": 30, "credential": "NAME", "fail_on_status": true}`.
Output: `{"status", "headers", "url", "json"}` for a JSON response, else `"body"` for text.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import ssl
from typing import Any
from urllib.parse import urljoin, urlsplit

from workflows.nodes.base import NodeType, StepContext, StepError, StepTimeout
from workflows.nodes.config import (
    check_fields,
    check_number,
    check_rendered,
    check_str_map,
    is_expression,
    workflow_slug,
)
from workflows.nodes.registry import register_node_type

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
IDEMPOTENT_METHODS = ("GET", "HEAD")
MAX_REDIRECTS = 5
MAX_RESPONSE_BYTES = 2_000_000
DEFAULT_TIMEOUT = 30.0
# Headers that belong to the original host only: dropped when a redirect leaves it.
HOST_BOUND_HEADERS = {"authorization", "cookie", "proxy-authorization"}


def _connect(addresses: list[str], port: int, timeout: float) -> socket.socket:
    """A connection to the first checked address that answers."""
    error: OSError = OSError("no address")
    for address in addresses:
        try:
            return socket.create_connection((address, port), timeout)
        except TimeoutError:
            raise
        except OSError as exc:
            error = exc
    raise error


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the checked addresses while speaking HTTP to the host name."""

    def __init__(self, host: str, port: int, addresses: list[str], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.addresses = addresses

    def connect(self) -> None:
        self.sock = _connect(self.addresses, self.port, self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, addresses: list[str], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.addresses = addresses

    def connect(self) -> None:
        sock = _connect(self.addresses, self.port, self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def resolve_host(host: str, port: int, *, allow_private: bool) -> list[str]:
    """The addresses to connect to; StepError when the host resolves to a refused address."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise StepError(f"cannot resolve {host!r}: {exc}") from exc
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not allow_private:
        refused = [a for a in addresses if not is_public_address(a)]
        if refused:
            raise StepError(
                f"refused: {host!r} resolves to the private or loopback address {refused[0]}; "
                "set the workflow policy allow_private_network to call it",
                retryable=False,
            )
    return addresses


def _host_key(hostname: str, port: int) -> str:
    return f"[{hostname}]:{port}" if ":" in hostname else f"{hostname}:{port}"


def _url_problems(url: Any) -> list[tuple[str, str]]:
    if not isinstance(url, str):
        return [("url", "must be a URL")]
    if is_expression(url):
        return []
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for an invalid port
    except ValueError as exc:
        return [("url", f"not a valid URL: {exc}")]
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [("url", "must be an absolute http:// or https:// URL")]
    return []


@register_node_type
class HttpNode(NodeType):
    name = "http"

    def validate_config(self, config: dict[str, Any]) -> list[tuple[str, str]]:
        problems = check_fields(
            config,
            required={"url"},
            optional={
                "method",
                "headers",
                "body",
                "json",
                "timeout_seconds",
                "credential",
                "fail_on_status",
            },
        )
        problems += _url_problems(config.get("url")) if "url" in config else []
        method = config.get("method", "GET")
        if not isinstance(method, str) or method.upper() not in METHODS:
            problems.append(("method", f"must be one of {', '.join(METHODS)}"))
        problems += check_str_map(config, "headers")
        if "body" in config and "json" in config:
            problems.append(("body", "give either body or json, not both"))
        if "body" in config and not isinstance(config["body"], str):
            problems.append(("body", "must be text; use json for a JSON body"))
        problems += check_number(config, "timeout_seconds", low=0.1, high=600)
        credential = config.get("credential")
        if "credential" in config and (not isinstance(credential, str) or not credential):
            problems.append(("credential", "must be the name of a credential"))
        if not isinstance(config.get("fail_on_status", True), bool):
            problems.append(("fail_on_status", "must be true or false"))
        return problems

    def normalize_config(self, config: dict[str, Any]) -> dict[str, Any]:
        method = config.get("method", "GET")
        return {**config, "method": method.upper() if isinstance(method, str) else method}

    def is_idempotent(self, config: dict[str, Any]) -> bool:
        return str(config.get("method", "GET")).upper() in IDEMPOTENT_METHODS

    def credential_references(self, config: dict[str, Any]) -> list[tuple[str, str]]:
        name = config.get("credential")
        return [("credential", name)] if isinstance(name, str) and name else []

    def execute(self, ctx: StepContext) -> Any:
        config = ctx.config
        check_rendered(self, config)
        credential = self._credential(ctx)
        method = str(config.get("method", "GET")).upper()
        headers = {str(k): str(v) for k, v in (config.get("headers") or {}).items()}
        body: bytes | None = None
        if "json" in config:
            body = json.dumps(config["json"]).encode()
            headers.setdefault("Content-Type", "application/json")
        elif config.get("body") is not None:
            body = str(config["body"]).encode()
        timeout = float(config.get("timeout_seconds") or DEFAULT_TIMEOUT)
        if ctx.timeout_seconds:
            timeout = min(timeout, ctx.timeout_seconds)
        allow_private = bool(ctx.workflow_policies.get("allow_private_network"))
        return self._follow(
            ctx, str(config["url"]), method, headers, body, timeout, allow_private, credential
        )

    def _credential(self, ctx: StepContext) -> Any:
        name = ctx.config.get("credential")
        if not name:
            return None
        # Imported here: credentials is built on top of workflows, not the other way round.
        from credentials.exceptions import CredentialError
        from credentials.services import resolve

        try:
            resolved = resolve(name, workflow_slug=workflow_slug(ctx))
        except CredentialError as exc:
            raise StepError(str(exc), retryable=False) from exc
        ctx.secrets |= resolved.secrets
        return resolved

    def _follow(self, ctx, url, method, headers, body, timeout, allow_private, credential):
        origin = urlsplit(url).hostname
        started_secure = urlsplit(url).scheme == "https"
        for _hop in range(MAX_REDIRECTS + 1):
            if ctx.cancel.is_set():
                raise StepError("cancelled", retryable=False)
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise StepError(f"not an http(s) URL: {url[:200]}", retryable=False)
            hop_headers = dict(headers)
            if parts.hostname != origin:
                hop_headers = {
                    k: v for k, v in hop_headers.items() if k.lower() not in HOST_BOUND_HEADERS
                }
            port = parts.port or (443 if parts.scheme == "https" else 80)
            # A redirect from https to http must not carry the credential in clear text.
            downgraded = started_secure and parts.scheme == "http"
            allowed = credential is not None and not downgraded
            if allowed and credential.allows_host(_host_key(parts.hostname, port)):
                hop_headers = credential.apply_to_headers(hop_headers)
            status, response_headers, data = self._request(
                parts, port, method, hop_headers, body, timeout, allow_private
            )
            location = response_headers.get("location")
            if status in (301, 302, 303, 307, 308) and location:
                url = urljoin(url, location)
                if status == 303 or (status in (301, 302) and method not in ("GET", "HEAD")):
                    method, body = "GET", None
                    hop = {k: v for k, v in headers.items() if k.lower() != "content-type"}
                    headers = hop
                continue
            return self._result(ctx, url, status, response_headers, data)
        raise StepError(f"more than {MAX_REDIRECTS} redirects", retryable=False)

    def _request(self, parts, port, method, headers, body, timeout, allow_private):
        addresses = resolve_host(parts.hostname, port, allow_private=allow_private)
        kind = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
        conn = kind(parts.hostname, port, addresses, timeout)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            conn.request(method, target, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read(MAX_RESPONSE_BYTES + 1)
            response_headers = {k.lower(): v for k, v in response.getheaders()}
            return response.status, response_headers, data
        except TimeoutError as exc:
            raise StepTimeout(f"no response from {parts.hostname} within {timeout:g} s") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise StepError(f"request to {parts.hostname} failed: {exc}") from exc
        finally:
            conn.close()

    def _result(self, ctx, url, status, headers, data) -> dict[str, Any]:
        if len(data) > MAX_RESPONSE_BYTES:
            raise StepError(f"response larger than {MAX_RESPONSE_BYTES} bytes", retryable=False)
        text = data.decode("utf-8", errors="replace")
        if ctx.config.get("fail_on_status", True) and status >= 400:
            retryable = status >= 500 or status == 429
            raise StepError(f"HTTP {status} from {url[:200]}: {text[:500]}", retryable=retryable)
        result: dict[str, Any] = {"status": status, "headers": headers, "url": url}
        if "json" in headers.get("content-type", ""):
            try:
                result["json"] = json.loads(text)
                return result
            except ValueError:
                pass
        result["body"] = text
        return result
