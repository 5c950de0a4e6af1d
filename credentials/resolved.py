"""What a step gets: a decrypted credential that knows where it may be sent."""

from __future__ import annotations

from dataclasses import dataclass, field

from credentials.exceptions import CredentialError
from credentials.hosts import host_allowed
from credentials.types import CredentialType


@dataclass(frozen=True, repr=False)
class ResolvedCredential:
    name: str
    type: CredentialType
    allowed_hosts: tuple[str, ...]
    values: dict[str, str] = field(compare=False)  # every field, secret or not, decrypted
    secret_fields: frozenset[str] = frozenset()

    def __repr__(self) -> str:  # tracebacks and debuggers must not print the values
        return f"<ResolvedCredential {self.name} ({self.type.name})>"

    @property
    def secrets(self) -> set[str]:
        """Every secret value and the forms built from them, for masking."""
        found = {self.values[name] for name in self.secret_fields if self.values.get(name)}
        return found | self.type.derived_secrets(self.values)

    def allows_host(self, host: str) -> bool:
        """Whether requests to `host` ("name", "name:port", "[v6]:port") may carry it."""
        return host_allowed(host, self.allowed_hosts)

    def apply_to_headers(self, headers: dict[str, str]) -> dict[str, str]:
        """`headers` plus the authentication of this credential's type. The caller applies it
        only to allowed hosts, hop by hop across redirects."""
        return self.type.apply_to_headers(self.values, headers)

    def env(self, fields: list[str]) -> dict[str, str]:
        """{field: value} for a script's environment; CredentialError for an unknown field."""
        unknown = [name for name in fields if name not in self.values]
        if unknown:
            known = ", ".join(sorted(self.values)) or "none"
            raise CredentialError(
                f"Credential {self.name!r} has no field {unknown[0]!r} (fields: {known})."
            )
        return {name: self.values[name] for name in fields}
