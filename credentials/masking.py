"""Replace known secret values, and the forms they commonly travel in, with ***."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
# Shorter values would mask ordinary words and numbers everywhere; credential types require more.
MIN_SECRET_LENGTH = 4


def secret_forms(secrets: Iterable[str]) -> list[str]:
    """Every form to mask, longest first so a longer form is never half-masked."""
    forms: set[str] = set()
    for secret in secrets:
        if not secret or len(secret) < MIN_SECRET_LENGTH:
            continue
        raw = secret.encode()
        forms.update(
            {
                secret,
                quote(secret, safe=""),
                quote_plus(secret),
                base64.b64encode(raw).decode(),
                base64.b64encode(raw).decode().rstrip("="),
                base64.urlsafe_b64encode(raw).decode().rstrip("="),
            }
        )
    return sorted(forms, key=len, reverse=True)


def mask(value: Any, secrets: Iterable[str]) -> Any:
    """Return `value` (a string or any JSON value) with every secret form replaced by ***."""
    forms = secret_forms(secrets)
    if not forms:
        return value
    return _mask(value, forms)


def _mask(value: Any, forms: list[str]) -> Any:
    if isinstance(value, str):
        for form in forms:
            if form in value:
                value = value.replace(form, MASK)
        return value
    if isinstance(value, dict):
        return {_mask(k, forms): _mask(v, forms) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v, forms) for v in value]
    return value
