"""API tokens: creation (the only moment the token exists in clear), lookup and revocation."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from api.models import ApiToken

TOKEN_MARK = "apst"
# Writing last_used_at on every request would turn each read into a write; a minute is precise
# enough to tell a live token from an abandoned one.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create_token(
    user: AbstractBaseUser,
    *,
    name: str,
    scopes: list[str] | tuple[str, ...] = ("read",),
) -> tuple[ApiToken, str]:
    """Create a token for `user`; return the row and the token text, which is never stored."""
    unknown = set(scopes) - set(ApiToken.SCOPES)
    if unknown:
        raise ValueError(f"Unknown scopes: {', '.join(sorted(unknown))}")
    token = ApiToken(user=user, name=name)
    text = fill_secret(token)
    for scope in ApiToken.SCOPES:
        setattr(token, f"can_{scope}", scope in scopes)
    token.save()
    return token, text


def fill_secret(token: ApiToken) -> str:
    """Give an unsaved token its prefix and hash; return the token text to show once."""
    prefix = secrets.token_hex(6)
    text = f"{TOKEN_MARK}_{prefix}_{secrets.token_urlsafe(32)}"
    token.prefix = prefix
    token.token_hash = hash_token(text)
    return text


def find_token(text: str) -> ApiToken | None:
    """The live token whose text this is, or None (unknown, malformed, revoked, inactive user)."""
    mark, _, rest = text.partition("_")
    prefix, _, secret = rest.partition("_")
    if mark != TOKEN_MARK or not prefix or not secret:
        return None
    token = ApiToken.objects.select_related("user").filter(prefix=prefix).first()
    # Compare hashes in constant time so response timing says nothing about the secret.
    if token is None or not hmac.compare_digest(token.token_hash, hash_token(text)):
        return None
    if token.is_revoked or not token.user.is_active:
        return None
    _touch(token)
    return token


def _touch(token: ApiToken) -> None:
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
