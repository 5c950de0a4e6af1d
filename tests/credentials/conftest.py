import base64

import pytest

from credentials import services


def key_entry(key_id: str, byte: int) -> str:
    """A deterministic test key: 32 copies of `byte`."""
    return f"{key_id}:{base64.b64encode(bytes([byte]) * 32).decode()}"


K1 = key_entry("k1", 1)
K2 = key_entry("k2", 2)


@pytest.fixture
def key_ring_k1(settings):
    settings.CREDENTIALS_KEYS = K1
    return settings


@pytest.fixture
def github_token(db, key_ring_k1):
    """A bearer token that the workflow 'sync-issues' may send to api.github.test."""
    return services.create_credential(
        name="github",
        type="bearer_token",
        secrets={"token": "ghp_canary_0123456789abcdef"},
        allowed_hosts=["api.github.test"],
        allowed_workflows=["sync-issues"],
    )
