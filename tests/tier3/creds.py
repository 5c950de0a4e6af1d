from credentials.resolved import ResolvedCredential
from credentials.types import get_type


def bearer(name: str, token: str, hosts: list[str]) -> ResolvedCredential:
    """A resolved bearer-token credential, as credentials.services.resolve returns it."""
    return ResolvedCredential(
        name=name,
        type=get_type("bearer_token"),
        allowed_hosts=tuple(hosts),
        values={"token": token},
        secret_fields=frozenset({"token"}),
    )
