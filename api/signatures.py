"""HMAC-SHA256 webhook signatures over "<timestamp>.<raw body>", with a replay window."""

from __future__ import annotations

import hashlib
import hmac
import re
import time

from api.errors import ApiError

SIGNATURE_HEADER = "X-Appstrate-Signature"
TIMESTAMP_HEADER = "X-Appstrate-Timestamp"
_SIGNATURE = re.compile(r"sha256=([0-9a-f]{64})")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The signature header value a sender computes (and documents use as the example)."""
    message = f"{timestamp}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(
    secret: str,
    *,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    tolerance_seconds: int,
    now: float | None = None,
) -> str:
    """Return the verified signature's hex digest, or raise a 401 ApiError saying why."""
    if not timestamp or not signature:
        raise _refuse(
            "signature_missing", f"{SIGNATURE_HEADER} and {TIMESTAMP_HEADER} are required."
        )
    if not _TIMESTAMP.fullmatch(timestamp):
        raise _refuse("signature_invalid", f"{TIMESTAMP_HEADER} must be Unix seconds.")
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > tolerance_seconds:
        # An old request replayed later lands here even though its signature is genuine.
        raise _refuse(
            "signature_expired",
            f"{TIMESTAMP_HEADER} is more than {tolerance_seconds} s away from the server's time.",
        )
    match = _SIGNATURE.fullmatch(signature.strip())
    expected = sign(secret, timestamp, body).removeprefix("sha256=")
    # Constant time, so the response time leaks nothing about how much of a guess was right.
    if not match or not hmac.compare_digest(match.group(1), expected):
        raise _refuse("signature_invalid", "The signature does not match the body.")
    return expected


def _refuse(code: str, message: str) -> ApiError:
    return ApiError(401, code, message)
