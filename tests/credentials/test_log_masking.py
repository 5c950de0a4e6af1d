import logging

import pytest

from credentials import masking, services

SECRET = "ghp_canary_0123456789abcdef"


def test_it_masks_resolved_secrets_in_log_records_of_any_logger(github_token, caplog):
    services.resolve("github", workflow_slug="sync-issues")
    caplog.set_level(logging.INFO)
    # A project logger that does not propagate, a third-party logger, %-args and f-strings
    logging.getLogger("thirdparty.client").warning("sending Authorization: Bearer %s", SECRET)
    logging.getLogger("runs").info(f"token={SECRET}")
    text = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert SECRET not in text
    assert "Bearer ***" in text


def test_it_masks_exception_text_and_encoded_forms(github_token, caplog):
    services.resolve("github", workflow_slug="sync-issues")
    import base64
    from urllib.parse import quote

    try:
        raise RuntimeError(f"upstream rejected {SECRET}")
    except RuntimeError:
        logging.getLogger("workflows").exception(
            "b64=%s url=%s", base64.b64encode(SECRET.encode()).decode(), quote(SECRET + "/")
        )
    assert "ghp_canary" not in caplog.text
    assert base64.b64encode(SECRET.encode()).decode() not in caplog.text
    assert "RuntimeError: upstream rejected ***" in caplog.text


def test_it_masks_key_material_in_logs(key_ring_k1, caplog, settings):
    from credentials.keyring import get_key_ring

    get_key_ring()
    key = settings.CREDENTIALS_KEYS.partition(":")[2]
    logging.getLogger("appstrate").error(
        "settings dump: CREDENTIALS_KEYS=%s", settings.CREDENTIALS_KEYS
    )
    assert key not in caplog.text
    assert "CREDENTIALS_KEYS=***" in caplog.text


def test_it_leaves_records_alone_when_nothing_matches(caplog):
    masking.remember(["a-remembered-secret"])
    logging.getLogger("runs").warning("plain %s and %d", "words", 3)
    assert "plain words and 3" in caplog.text


@pytest.mark.parametrize("bad", [("%s %s", ("one",)), ("%d", ("x",))])
def test_it_survives_malformed_format_strings(caplog, bad):
    masking.remember(["a-remembered-secret"])
    record = logging.getLogger("runs").makeRecord(
        "runs", logging.INFO, "f", 1, bad[0], bad[1], None
    )
    assert isinstance(record.getMessage(), str)
