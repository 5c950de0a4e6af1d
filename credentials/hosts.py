"""Host allowlists: exact hosts, optionally with a port, and `*.example.com` wildcards."""

from __future__ import annotations

import re
from collections.abc import Iterable

# A hostname label, an IPv4 address, or a bracketed IPv6 address, then an optional port.
_ENTRY_RE = re.compile(
    r"^(?:\*\.)?(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
    r"(?::\d{1,5})?$|^\[[0-9a-f:.]+\](?::\d{1,5})?$"
)


def split_host(host: str) -> tuple[str, int | None]:
    """("name", port or None) from "name", "name:port", "[v6]" or "[v6]:port", lower-cased."""
    host = host.strip().lower()
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif host.count(":") == 1:
        name, _, port = host.partition(":")
    else:  # a bare name, or a bare IPv6 address
        name, port = host, ""
    return name.rstrip("."), int(port) if port.isdigit() else None


def entry_error(entry: str) -> str | None:
    """Why `entry` is not a valid allowlist entry, or None."""
    if not _ENTRY_RE.match(entry.strip().lower()):
        return (
            f"{entry!r} is not a host: use api.example.com, api.example.com:8443, "
            "*.example.com, 127.0.0.1 or [::1]."
        )
    _, port = split_host(entry)
    if port is not None and not 0 < port < 65536:
        return f"{entry!r} has an invalid port."
    return None


def host_allowed(host: str, allowed: Iterable[str]) -> bool:
    """An entry with a port matches only that port; `*.example.com` matches any subdomain
    (at any depth) but not example.com itself."""
    name, port = split_host(host)
    if not name:
        return False
    for entry in allowed:
        entry_name, entry_port = split_host(entry)
        if entry_port is not None and entry_port != port:
            continue
        if entry_name.startswith("*."):
            if name.endswith(entry_name[1:]) and len(name) > len(entry_name) - 1:
                return True
        elif name == entry_name:
            return True
    return False
