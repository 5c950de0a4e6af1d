"""Credential types: registered in code, each a field schema that says which fields are secret.

A project adds its own type from its AppConfig.ready():

    from credentials.types import CredentialType, Field, register

    @register
    class HmacKey(CredentialType):
        name = "hmac_key"
        label = "HMAC signing key"
        fields = (Field("key_id", "Key id"), Field("secret", "Signing secret", secret=True))

        def apply_to_headers(self, values, headers):
            return {**headers, "X-Key-Id": values["key_id"]}
"""

from __future__ import annotations

import base64
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import urlsplit

from credentials.exceptions import CredentialTestFailed

if TYPE_CHECKING:
    from credentials.resolved import ResolvedCredential

FIELD_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
TEST_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    secret: bool = False
    required: bool = True
    default: str = ""
    help_text: str = ""


class CredentialType:
    """A kind of credential. Subclasses set `name`, `label` and `fields`.

    `dynamic_fields = True` means the operator names the fields of each credential (the
    generic type); then `fields` is empty and every secret field is whatever they entered.
    """

    name: ClassVar[str]
    label: ClassVar[str]
    fields: ClassVar[tuple[Field, ...]] = ()
    dynamic_fields: ClassVar[bool] = False
    # Whether `test` does anything; the admin offers the test action only for such types.
    testable: ClassVar[bool] = False

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)

    def is_secret(self, name: str) -> bool:
        spec = self.field(name)
        return spec.secret if spec else self.dynamic_fields

    def validate(self, fields: dict[str, str], secrets: dict[str, str]) -> list[tuple[str, str]]:
        """(field, message) pairs for a credential's complete values; empty when valid."""
        errors = []
        for spec in self.fields:
            value = (secrets if spec.secret else fields).get(spec.name, "")
            if spec.required and not value:
                errors.append((spec.name, f"{spec.label} is required."))
        return errors

    def apply_to_headers(self, values: dict[str, str], headers: dict[str, str]) -> dict[str, str]:
        """Return `headers` plus this credential's authentication; types with none return it."""
        return dict(headers)

    def derived_secrets(self, values: dict[str, str]) -> set[str]:
        """Values built from secrets that may travel on their own (masked like the secrets)."""
        return set()

    def test(self, resolved: ResolvedCredential, target: str) -> str:
        """Check the credential works; return a short success message or raise
        CredentialTestFailed. `target` is what the operator typed (a URL for HTTP types)."""
        raise CredentialTestFailed(f"Credential type {self.name!r} has no test.")


class HttpCredentialType(CredentialType):
    """Types that authenticate HTTP requests; their test is a GET to an allowed URL."""

    testable = True

    def test(self, resolved: ResolvedCredential, target: str) -> str:
        try:
            parts = urlsplit(target.strip())
            host = parts.hostname or ""
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise CredentialTestFailed("That is not a valid URL.") from None
        if parts.scheme not in ("http", "https") or not host or parts.username is not None:
            raise CredentialTestFailed(
                "Give an http:// or https:// URL (without a user name) to test against."
            )
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if not resolved.allows_host(where):
            raise CredentialTestFailed(
                f"{where} is not in the allowed hosts of credential {resolved.name!r}."
            )
        request = urllib.request.Request(
            target.strip(), headers=resolved.apply_to_headers({"User-Agent": "Appstrate"})
        )
        # Never follow a redirect here: it could carry the credential to another host.
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(request, timeout=TEST_TIMEOUT_SECONDS) as response:
                return f"HTTP {response.status} from {where}"
        except urllib.error.HTTPError as exc:
            raise CredentialTestFailed(f"HTTP {exc.code} from {where}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CredentialTestFailed(f"Could not reach {where}: {reason}") from None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[override]
        return None


_registry: dict[str, CredentialType] = {}


def register(type_class: type[CredentialType]) -> type[CredentialType]:
    """Register a credential type (usable as a class decorator). A name is registered once."""
    name = type_class.name
    if name in _registry and type(_registry[name]) is not type_class:
        raise ValueError(f"A credential type named {name!r} is already registered.")
    _registry[name] = type_class()
    return type_class


def get_type(name: str) -> CredentialType | None:
    return _registry.get(name)


def all_types() -> list[CredentialType]:
    return sorted(_registry.values(), key=lambda t: t.label.lower())


@register
class ApiKeyHeader(HttpCredentialType):
    name = "api_key_header"
    label = "API key in a header"
    fields = (
        Field("header_name", "Header name", default="X-API-Key", help_text="e.g. X-API-Key"),
        Field("api_key", "API key", secret=True),
    )

    def validate(self, fields, secrets):
        errors = super().validate(fields, secrets)
        header = fields.get("header_name", "")
        if header and not HEADER_NAME_RE.match(header):
            errors.append(("header_name", "Not a valid HTTP header name."))
        if header.lower() in ("host", "content-length", "transfer-encoding"):
            errors.append(("header_name", f"{header} cannot carry a credential."))
        return errors

    def apply_to_headers(self, values, headers):
        return {**headers, values["header_name"]: values["api_key"]}


@register
class BearerToken(HttpCredentialType):
    name = "bearer_token"
    label = "Bearer token"
    fields = (Field("token", "Token", secret=True),)

    def apply_to_headers(self, values, headers):
        return {**headers, "Authorization": f"Bearer {values['token']}"}


@register
class BasicAuth(HttpCredentialType):
    name = "basic_auth"
    label = "HTTP basic auth"
    fields = (
        Field("username", "Username"),
        Field("password", "Password", secret=True),
    )

    def apply_to_headers(self, values, headers):
        return {**headers, "Authorization": f"Basic {_basic_token(values)}"}

    def derived_secrets(self, values):
        # The header carries base64("user:password"), which masking the password alone misses.
        return {f"{values['username']}:{values['password']}", _basic_token(values)}


def _basic_token(values: dict[str, str]) -> str:
    return base64.b64encode(f"{values['username']}:{values['password']}".encode()).decode()


@register
class GenericFields(CredentialType):
    name = "fields"
    label = "Custom fields"
    dynamic_fields = True

    def validate(self, fields, secrets):
        errors = [
            ("fields", f"{name!r} is not a valid field name (letters, digits, _).")
            for name in [*fields, *secrets]
            if not FIELD_NAME_RE.match(name)
        ]
        errors += [
            ("fields", f"{name!r} is both a secret and a non-secret field.")
            for name in set(fields) & set(secrets)
        ]
        return errors
