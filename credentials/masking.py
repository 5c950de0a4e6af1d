"""Replace known secret values, and the forms they commonly travel in, with ***."""

from __future__ import annotations

import base64
import functools
import logging
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
# Shorter values would mask ordinary words and numbers everywhere; credential types require more.
MIN_SECRET_LENGTH = 4


def secret_forms(secrets: Iterable[str]) -> list[str]:
    """Every form to mask, longest first so a longer form is never half-masked."""
    forms: set[str] = set()
    for secret in secrets:
        if not secret or len(secret) < MIN_SECRET_LENGTH:
            continue
        raw = secret.encode()
        forms.update(
            {
                secret,
                quote(secret, safe=""),
                quote_plus(secret),
                base64.b64encode(raw).decode(),
                base64.b64encode(raw).decode().rstrip("="),
                base64.urlsafe_b64encode(raw).decode().rstrip("="),
            }
        )
    return sorted(forms, key=len, reverse=True)


def mask(value: Any, secrets: Iterable[str]) -> Any:
    """Return `value` (a string or any JSON value) with every secret form replaced by ***.

    Besides `secrets`, every secret this process has decrypted (see `remember`) is masked, so
    a value that reaches a step some other way (project code resolving a credential itself)
    is caught too.
    """
    forms = _forms_for(frozenset(secrets), _generation)
    if not forms:
        return value
    return _mask(value, forms)


@functools.lru_cache(maxsize=256)
def _forms_for(secrets: frozenset[str], generation: int) -> list[str]:
    # Cached per set of secrets and per state of the remembered set (`generation`): the engine
    # masks every log line and output with the same few secrets.
    if not _remembered_forms:
        return secret_forms(secrets)
    return sorted({*secret_forms(secrets), *_remembered_forms}, key=len, reverse=True)


def _mask(value: Any, forms: list[str]) -> Any:
    if isinstance(value, str):
        for form in forms:
            if form in value:
                value = value.replace(form, MASK)
        return value
    if isinstance(value, dict):
        return {_mask(k, forms): _mask(v, forms) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v, forms) for v in value]
    return value


# Secrets this process has decrypted (and the key ring's material), newest last. Log records
# are masked against them whoever logs and whichever handler writes: a run's secrets stay
# remembered after the run ends, because its threads and libraries may still log afterwards.
# Masking cost grows with the number remembered (bench/masking.py): a worker holds the secrets
# of the credentials it has resolved, which is bounded by the credentials that exist.
_REMEMBERED_LIMIT = 500
_remembered: dict[str, None] = {}
_remembered_forms: list[str] = []
_generation = 0
_lock = threading.Lock()


def remember(secrets: Iterable[str]) -> None:
    """Mask these values in every log record this process writes from now on."""
    global _remembered_forms, _generation
    new = [s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH and s not in _remembered]
    if not new:
        return
    with _lock:
        for secret in new:
            _remembered[secret] = None
        while len(_remembered) > _REMEMBERED_LIMIT:
            del _remembered[next(iter(_remembered))]
        _remembered_forms = secret_forms(_remembered)
        _generation += 1


def forget_all() -> None:
    """Forget every remembered secret (tests, so one test's secrets never mask another's)."""
    global _remembered_forms, _generation
    with _lock:
        _remembered.clear()
        _remembered_forms = []
        _generation += 1


def mask_remembered(value: Any) -> Any:
    """`mask` with every secret this process remembers."""
    forms = _remembered_forms
    return _mask(value, forms) if forms else value


def install_log_masking() -> None:
    """Mask remembered secrets in every log record when it is created (once per process).

    A record factory, unlike a handler filter, also covers handlers added later (Celery's,
    pytest's caplog) and loggers that do not propagate. The exception text is rendered and
    masked here too, because formatters reuse `record.exc_text` when it is set.
    """
    previous = logging.getLogRecordFactory()
    if getattr(previous, "masks_secrets", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if _remembered_forms:
            _mask_record(record)
        return record

    factory.masks_secrets = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def _mask_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a malformed format string: keep both parts, masked below
        message = f"{record.msg} {record.args}"
    record.msg, record.args = mask_remembered(message), ()
    if record.exc_info and not record.exc_text:
        record.exc_text = mask_remembered(_EXC_FORMATTER.formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = mask_remembered(record.stack_info)


_EXC_FORMATTER = logging.Formatter()
