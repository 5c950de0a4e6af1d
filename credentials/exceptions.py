"""Errors of the credentials app. Messages name credentials, fields and key ids, never values."""


class CredentialError(Exception):
    """A credential cannot be used: missing, not allowed, unreadable or misconfigured."""


class KeyNotInRing(CredentialError):
    """A value was encrypted with a key id that the configured key ring no longer holds."""

    def __init__(self, key_id: str, where: str = "") -> None:
        self.key_id = key_id
        prefix = f"{where}: " if where else ""
        super().__init__(
            f"{prefix}encrypted with key {key_id!r}, which is not in the key ring. "
            f"Fix: add {key_id}:<key> back to CREDENTIALS_KEYS (after the active key), "
            "then run manage.py rotatecredentials."
        )


class DecryptionFailed(CredentialError):
    """The key exists but the value does not authenticate (wrong key material or tampering)."""


class CredentialTestFailed(CredentialError):
    """A type's test ran and the service rejected the credential or could not be reached."""
