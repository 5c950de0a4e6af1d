import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from credentials import services
from credentials.exceptions import CredentialError
from credentials.models import Credential, SecretValue
from tests.credentials.conftest import K1, K2, key_entry

pytestmark = pytest.mark.django_db


@pytest.fixture
def three_credentials(key_ring_k1):
    for n in range(3):
        services.create_credential(
            name=f"c{n}",
            type="basic_auth",
            fields={"username": f"user{n}"},
            secrets={"password": f"password-number-{n}"},
            allowed_workflows=["*"],
        )
    services.create_credential(
        name="multi",
        type="fields",
        secrets={"a": "value-a-000", "b": "value-b-000"},
        allowed_workflows=["*"],
    )
    return 5  # encrypted values


def passwords():
    return {
        name: services.resolve(name, workflow_slug="w").values.get("password")
        for name in ("c0", "c1", "c2")
    }


def test_it_reads_old_values_after_a_new_key_is_added(three_credentials, settings):
    settings.CREDENTIALS_KEYS = f"{K2},{K1}"
    assert passwords() == {f"c{n}": f"password-number-{n}" for n in range(3)}
    # New writes should use the new active key while old values stay under k1
    services.update_credential(
        Credential.objects.get(name="c0"), secrets={"password": "fresh-pass-1"}
    )
    assert set(SecretValue.objects.values_list("key_id", flat=True)) == {"k1", "k2"}


def test_it_rotates_every_value_to_the_active_key(three_credentials, settings, capsys):
    settings.CREDENTIALS_KEYS = f"{K2},{K1}"
    call_command("rotatecredentials")
    out = capsys.readouterr().out
    assert "Rotated 5 value(s) to key k2; 0 already under it." in out
    assert set(SecretValue.objects.values_list("key_id", flat=True)) == {"k2"}
    # It should still read everything, now without k1 in the ring at all
    settings.CREDENTIALS_KEYS = K2
    assert passwords() == {f"c{n}": f"password-number-{n}" for n in range(3)}
    assert services.resolve("multi", workflow_slug="w").values == {
        "a": "value-a-000",
        "b": "value-b-000",
    }


def test_it_is_safe_to_run_twice(three_credentials, settings, capsys):
    settings.CREDENTIALS_KEYS = f"{K2},{K1}"
    call_command("rotatecredentials")
    ciphertexts = list(SecretValue.objects.values_list("ciphertext", flat=True))
    call_command("rotatecredentials")
    assert "Rotated 0 value(s) to key k2; 5 already under it." in capsys.readouterr().out
    # A second run should not touch values that are already current
    assert list(SecretValue.objects.values_list("ciphertext", flat=True)) == ciphertexts


def test_it_resumes_an_interrupted_rotation(three_credentials, settings, capsys, monkeypatch):
    settings.CREDENTIALS_KEYS = f"{K2},{K1}"
    # Stop part-way, as an operator's --limit (or a crash between rows) would
    call_command("rotatecredentials", limit=2)
    assert "Rotated 2 value(s)" in capsys.readouterr().out
    assert SecretValue.objects.filter(key_id="k2").count() == 2
    # Mid-way, every value should read, whichever key holds it
    assert passwords() == {f"c{n}": f"password-number-{n}" for n in range(3)}

    # A crash inside a row rolls that row back: it stays under its old key, still readable
    from credentials import keyring

    real_encrypt = keyring.KeyRing.encrypt

    def crash(self, plaintext, *, associated_data):
        raise KeyboardInterrupt

    monkeypatch.setattr(keyring.KeyRing, "encrypt", crash)
    with pytest.raises(KeyboardInterrupt):
        call_command("rotatecredentials")
    assert SecretValue.objects.filter(key_id="k2").count() == 2
    monkeypatch.setattr(keyring.KeyRing, "encrypt", real_encrypt)
    assert passwords() == {f"c{n}": f"password-number-{n}" for n in range(3)}

    call_command("rotatecredentials")
    assert "Rotated 3 value(s) to key k2; 2 already under it." in capsys.readouterr().out
    assert set(SecretValue.objects.values_list("key_id", flat=True)) == {"k2"}


def test_it_names_the_credential_and_key_when_a_key_is_gone(three_credentials, settings, capsys):
    settings.CREDENTIALS_KEYS = K2  # k1 was removed before rotating
    with pytest.raises(
        CredentialError, match=r"credential 'c0' field 'password': encrypted with key 'k1'"
    ):
        services.resolve("c0", workflow_slug="w")
    # The command should report every unreadable value and fail, not crash
    with pytest.raises(CommandError, match="5 could not be read"):
        call_command("rotatecredentials")
    err = capsys.readouterr().err
    assert "credential 'multi' field 'a': encrypted with key 'k1'" in err
    assert set(SecretValue.objects.values_list("key_id", flat=True)) == {"k1"}


def test_it_shows_unreadable_values_in_the_status_instead_of_crashing(three_credentials, settings):
    settings.CREDENTIALS_KEYS = key_entry("k3", 3)
    status = services.secret_status(Credential.objects.get(name="c1"))
    assert status[0].is_set and "'k1'" in status[0].problem


def test_it_generates_a_usable_key_entry(capsys, settings):
    call_command("rotatecredentials", generate_key="k9")
    entry = capsys.readouterr().out.strip()
    assert entry.startswith("k9:")
    settings.CREDENTIALS_KEYS = f"{entry},{K1}"
    from credentials.keyring import get_key_ring

    assert get_key_ring().active_id == "k9"
    with pytest.raises(CommandError, match="KEY_ID must be"):
        call_command("rotatecredentials", generate_key="no spaces")
    with pytest.raises(CommandError, match="--limit must be 1 or more"):
        call_command("rotatecredentials", limit=0)
