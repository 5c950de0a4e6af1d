"""The key ring: AES-256-GCM keys named by id, the first one active.

CREDENTIALS_KEYS looks like "k2:BASE64KEY,k1:BASE64KEY" (commas or newlines between entries,
so a CREDENTIALS_KEYS_FILE may hold one key per line). New values are encrypted with the
first key; the others only decrypt, which is what lets a new key be added without downtime.
Every ciphertext is stored next to the id of the key that made it, and associated data binds
it to one credential and field, so a value copied to another row fails to decrypt.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from credentials import masking
from credentials.exceptions import DecryptionFailed, KeyNotInRing

KEY_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
NONCE_BYTES = 12
KEY_BYTES = 32


@dataclass(frozen=True)
class Ciphertext:
    key_id: str
    data: str  # base64 of nonce + AES-GCM ciphertext and tag


class KeyRing:
    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise ImproperlyConfigured("CREDENTIALS_KEYS holds no key.")
        self._keys = dict(keys)
        self.active_id = keys[0][0]
        self.key_ids = [key_id for key_id, _ in keys]

    def __repr__(self) -> str:  # never the key material, even in a debugger or a traceback
        return f"<KeyRing active={self.active_id} keys={self.key_ids}>"

    def __contains__(self, key_id: str) -> bool:
        return key_id in self._keys

    def encrypt(self, plaintext: str, *, associated_data: bytes) -> Ciphertext:
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self._keys[self.active_id]).encrypt(
            nonce, plaintext.encode(), associated_data
        )
        return Ciphertext(self.active_id, base64.b64encode(nonce + sealed).decode())

    def decrypt(self, ciphertext: Ciphertext, *, associated_data: bytes, where: str = "") -> str:
        key = self._keys.get(ciphertext.key_id)
        if key is None:
            raise KeyNotInRing(ciphertext.key_id, where)
        try:
            raw = base64.b64decode(ciphertext.data, validate=True)
            opened = AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], associated_data)
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise DecryptionFailed(
                f"{where + ': ' if where else ''}does not decrypt with key "
                f"{ciphertext.key_id!r} (the key material changed or the value was tampered with)."
            ) from exc
        return opened.decode()


def parse_keys(text: str) -> list[tuple[str, bytes]]:
    """Parse "id:base64key" entries; errors name the entry's id and position, never the key."""
    entries = [e.strip() for e in re.split(r"[,\s]+", text or "") if e.strip()]
    keys: list[tuple[str, bytes]] = []
    for position, entry in enumerate(entries, start=1):
        key_id, sep, encoded = entry.partition(":")
        where = f"CREDENTIALS_KEYS entry {position}"
        if not sep or not KEY_ID_RE.match(key_id):
            raise ImproperlyConfigured(
                f"{where} must look like ID:BASE64KEY with an ID of letters, digits, '.', '_' "
                "or '-'. Fix: generate one with manage.py rotatecredentials --generate-key."
            )
        try:
            key = base64.urlsafe_b64decode(encoded.replace("+", "-").replace("/", "_") + "==")
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != KEY_BYTES:
            raise ImproperlyConfigured(
                f"{where} ({key_id}) is not {KEY_BYTES} bytes of base64. "
                "Fix: generate one with manage.py rotatecredentials --generate-key."
            )
        if key_id in dict(keys):
            raise ImproperlyConfigured(f"{where}: key id {key_id!r} appears twice.")
        keys.append((key_id, key))
    return keys


def generate_key_entry(key_id: str) -> str:
    return f"{key_id}:{base64.b64encode(os.urandom(KEY_BYTES)).decode()}"


@functools.lru_cache(maxsize=8)
def _ring_for(text: str) -> KeyRing:
    return KeyRing(parse_keys(text))


def get_key_ring() -> KeyRing:
    """The ring configured in settings (cached per value, so tests may override the setting)."""
    text = settings.CREDENTIALS_KEYS
    ring = _ring_for(text)
    # Key material in any log line is masked like a run's secrets.
    masking.remember([text.strip(), *(e.partition(":")[2] for e in re.split(r"[,\s]+", text))])
    return ring


def describe() -> str:
    """One line for the startup log and doctor: ids and source only, never key material."""
    ring = get_key_ring()
    source = settings.CREDENTIALS_KEYS_SOURCE
    text = (
        f"credentials key ring: active {ring.active_id}, {len(ring.key_ids)} key(s) from {source}"
    )
    if settings.CREDENTIALS_DEV_KEY_GENERATED:
        text += " (a development key was generated just now: set CREDENTIALS_KEYS in production)"
    elif source.startswith("the development key file") and settings.APPSTRATE_MODE.tier >= 2:
        # Workers on other machines would generate other keys and fail to decrypt.
        text += " (every worker must share this data dir, or set CREDENTIALS_KEYS)"
    return text
