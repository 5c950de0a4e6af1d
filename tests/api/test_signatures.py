import pytest

from api.errors import ApiError
from api.signatures import sign, verify

SECRET = "whsec_test"
BODY = b'{"count": 3}'
NOW = 1_800_000_000


def _verify(timestamp, signature, body=BODY, now=NOW):
    return verify(
        SECRET, timestamp=timestamp, signature=signature, body=body, tolerance_seconds=300, now=now
    )


def test_it_accepts_a_signature_over_timestamp_dot_body():
    digest = _verify(str(NOW), sign(SECRET, NOW, BODY))
    assert sign(SECRET, NOW, BODY) == f"sha256={digest}"


@pytest.mark.parametrize(
    ("timestamp", "signature", "code"),
    [
        (None, None, "signature_missing"),
        (str(NOW), None, "signature_missing"),
        ("yesterday", "sha256=" + "0" * 64, "signature_invalid"),
        (str(NOW), "sha256=" + "0" * 64, "signature_invalid"),
        (str(NOW), "md5=abc", "signature_invalid"),
        (str(NOW), "sha256=é" + "0" * 63, "signature_invalid"),
        (str(NOW - 301), sign(SECRET, NOW - 301, BODY), "signature_expired"),
        (str(NOW + 301), sign(SECRET, NOW + 301, BODY), "signature_expired"),
    ],
)
def test_it_refuses_missing_wrong_and_expired_signatures(timestamp, signature, code):
    with pytest.raises(ApiError) as caught:
        _verify(timestamp, signature)
    assert caught.value.status == 401
    assert caught.value.code == code


def test_it_refuses_a_signature_for_another_body_or_secret():
    with pytest.raises(ApiError):
        _verify(str(NOW), sign(SECRET, NOW, b'{"count": 4}'))
    with pytest.raises(ApiError):
        _verify(str(NOW), sign("other", NOW, BODY))


def test_it_accepts_timestamps_just_inside_the_window():
    assert _verify(str(NOW - 300), sign(SECRET, NOW - 300, BODY))
