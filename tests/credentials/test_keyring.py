import base64

import pytest
from django.core.exceptions import ImproperlyConfigured

from credentials.exceptions import DecryptionFailed, KeyNotInRing
from credentials.keyring import Ciphertext, KeyRing, parse_keys
from tests.credentials.conftest import K1, K2

AAD = b"appstrate-credential:1:token"


def test_it_encrypts_with_the_first_key_and_decrypts_with_any():
    old_ring = KeyRing(parse_keys(K1))
    sealed = old_ring.encrypt("s3cret-value", associated_data=AAD)
    # It should name the key that encrypted it and not contain the plaintext
    assert sealed.key_id == "k1"
    assert "s3cret-value" not in sealed.data

    new_ring = KeyRing(parse_keys(f"{K2},{K1}"))
    assert new_ring.active_id == "k2"
    assert new_ring.decrypt(sealed, associated_data=AAD) == "s3cret-value"
    assert new_ring.encrypt("x", associated_data=AAD).key_id == "k2"


def test_it_binds_a_value_to_its_credential_and_field():
    ring = KeyRing(parse_keys(K1))
    sealed = ring.encrypt("s3cret-value", associated_data=AAD)
    # Copied to another credential's row, it should not open
    with pytest.raises(DecryptionFailed):
        ring.decrypt(sealed, associated_data=b"appstrate-credential:2:token")


def test_it_names_the_missing_key():
    ring = KeyRing(parse_keys(K2))
    with pytest.raises(KeyNotInRing, match=r"credential 'github' field 'token': .*'k1'"):
        ring.decrypt(
            Ciphertext("k1", "AAAA"), associated_data=AAD, where="credential 'github' field 'token'"
        )


def test_it_rejects_tampered_ciphertext():
    ring = KeyRing(parse_keys(K1))
    sealed = ring.encrypt("s3cret-value", associated_data=AAD)
    flipped = sealed.data[:-2] + ("A" if sealed.data[-2] != "A" else "B") + sealed.data[-1]
    with pytest.raises(DecryptionFailed):
        ring.decrypt(Ciphertext("k1", flipped), associated_data=AAD)
    with pytest.raises(DecryptionFailed):
        ring.decrypt(Ciphertext("k1", "not base64!"), associated_data=AAD)


def test_it_accepts_newlines_and_urlsafe_base64():
    # As secrets.token_urlsafe(32) makes it: "-" and "_", no padding
    urlsafe = "k3:" + base64.urlsafe_b64encode(b"\xfb\xff" * 16).decode().rstrip("=")
    assert "-" in urlsafe or "_" in urlsafe
    keys = parse_keys(f"{K2}\n{K1}\n")
    assert [key_id for key_id, _ in keys] == ["k2", "k1"]
    assert len(parse_keys(urlsafe)[0][1]) == 32


@pytest.mark.parametrize(
    "text",
    ["", "k1", "k1:short", "bad id:" + "A" * 43 + "=", f"{K1},{K1}", "k1:" + "!" * 44],
)
def test_it_refuses_malformed_key_config_without_echoing_it(text):
    with pytest.raises(ImproperlyConfigured) as excinfo:
        KeyRing(parse_keys(text))
    # The message should help without revealing key material
    key_part = text.partition(":")[2]
    if len(key_part) > 8:
        assert key_part not in str(excinfo.value)


def test_it_never_shows_key_material_in_its_repr():
    ring = KeyRing(parse_keys(K1))
    assert K1.partition(":")[2] not in repr(ring)
    assert "k1" in repr(ring)
