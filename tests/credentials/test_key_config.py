"""How processes get their key ring, and that key material never reaches logs or doctor."""

import pytest

from tests.credentials.conftest import K1, K2
from tests.infra.processes import manage

PRODUCTION = {"DEBUG": "false", "SECRET_KEY": "x" * 60, "ALLOWED_HOSTS": "example.test"}


def key_material(*entries: str) -> list[str]:
    return [entry.partition(":")[2] for entry in entries]


def test_it_generates_a_development_key_once_and_says_so(tmp_path):
    first = manage("check", data_dir=tmp_path)
    assert first.returncode == 0, first.stderr
    key_file = tmp_path / "credentials_keys"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert "a development key was generated just now" in first.stderr
    generated = key_file.read_text()

    second = manage("check", data_dir=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "from the development key file" in second.stderr
    assert "generated just now" not in second.stderr
    assert key_file.read_text() == generated
    # The startup line names the key, never its material
    assert generated.partition(":")[2] not in first.stderr + second.stderr


def test_it_refuses_to_start_without_a_key_when_debug_is_off(tmp_path):
    result = manage("check", data_dir=tmp_path, **PRODUCTION)
    assert result.returncode != 0
    assert "CREDENTIALS_KEYS is not set and DEBUG is off" in result.stderr
    assert not (tmp_path / "credentials_keys").exists()


@pytest.mark.parametrize("value", ["k1:tooshort", f"{K1},{K1}"])
def test_it_refuses_a_malformed_key_ring_naming_the_entry(tmp_path, value):
    result = manage("check", data_dir=tmp_path, CREDENTIALS_KEYS=value)
    assert result.returncode != 0
    assert "CREDENTIALS_KEYS entry" in result.stderr
    assert "Traceback" not in result.stderr.split("ImproperlyConfigured")[-1]


def test_it_reads_the_key_ring_from_a_file(tmp_path):
    keys = tmp_path / "keys"
    missing = manage("check", data_dir=tmp_path, CREDENTIALS_KEYS_FILE=str(keys), **PRODUCTION)
    assert missing.returncode != 0
    assert (
        f"CREDENTIALS_KEYS_FILE cannot be read (No such file or directory: {keys})"
        in missing.stderr
    )
    keys.write_text(f"{K2}\n{K1}\n")
    result = manage("doctor", data_dir=tmp_path, CREDENTIALS_KEYS_FILE=str(keys), **PRODUCTION)
    assert "credentials key ring: active k2, 2 key(s) from CREDENTIALS_KEYS_FILE" in result.stdout
    for material in key_material(K1, K2):
        assert material not in result.stdout + result.stderr


def test_it_never_prints_key_material_in_doctor_or_logs(tmp_path):
    env = {"CREDENTIALS_KEYS": f"{K2},{K1}", "LOG_LEVEL": "DEBUG"}
    doctor = manage("doctor", data_dir=tmp_path, **env)
    assert "credentials key ring: active k2, 2 key(s) from CREDENTIALS_KEYS" in doctor.stdout
    migrate = manage("migrate", "-v", "0", data_dir=tmp_path, **env)
    assert migrate.returncode == 0, migrate.stderr
    rotate = manage("rotatecredentials", data_dir=tmp_path, **env)
    assert "Rotated 0 value(s) to key k2" in rotate.stdout
    # A process that logs its own settings should still not write the key material
    dump = manage(
        "shell",
        "-c",
        "import logging; from django.conf import settings; "
        "logging.getLogger('appstrate').warning('keys=%s', settings.CREDENTIALS_KEYS)",
        data_dir=tmp_path,
        **env,
    )
    assert "keys=***" in dump.stderr
    everything = "".join(r.stdout + r.stderr for r in (doctor, migrate, rotate, dump))
    for material in key_material(K1, K2):
        assert material not in everything


def test_it_hides_the_key_ring_in_error_reports(settings):
    from django.views.debug import SafeExceptionReporterFilter

    settings.CREDENTIALS_KEYS = f"{K2},{K1}"
    # Django's DEBUG page and mailed reports list settings; this one must be cleansed
    shown = str(SafeExceptionReporterFilter().get_safe_settings())
    for material in key_material(K1, K2):
        assert material not in shown
