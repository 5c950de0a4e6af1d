"""Turning untrusted requests into clean Python values, or an ApiError (never a 500).

Every check happens before anything is written, so a rejected request changes nothing.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import HttpRequest, QueryDict
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from api.errors import ApiError
from api.openapi import DOCUMENT

MAX_JSON_DEPTH = 64
DB_INT_MAX = 2**63 - 1
_OPENAPI_URI = "urn:appstrate:openapi"
_REGISTRY = Registry().with_resource(_OPENAPI_URI, Resource.opaque(DOCUMENT))
_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]{1,128}")


def component_validator(name: str) -> Draft202012Validator:
    """A validator for `#/components/schemas/<name>` of the served OpenAPI document."""
    schema = {"$ref": f"{_OPENAPI_URI}#/components/schemas/{name}"}
    return Draft202012Validator(schema, registry=_REGISTRY)


def field_errors(validator: Draft202012Validator, value: Any) -> dict[str, list[str]]:
    """Validation errors keyed by the path of the offending field ("" for the whole value)."""
    fields: dict[str, list[str]] = {}
    for error in sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.path))):
        path = "/".join(str(part) for part in error.absolute_path)
        fields.setdefault(path, []).append(short(error.message))
    return fields


def short(message: str, limit: int = 300) -> str:
    """`message`, cut to `limit` characters."""
    # Messages quote the offending value, which may be a megabyte of attacker text.
    return message if len(message) <= limit else message[: limit - 1] + "…"


def read_body(request: HttpRequest, *, max_bytes: int) -> bytes:
    """The raw body, refusing anything over `max_bytes` (413) before reading it when possible."""
    declared = request.META.get("CONTENT_LENGTH") or "0"
    try:
        length = int(declared)
    except ValueError:
        raise ApiError(400, "bad_request", "Content-Length is not a number.") from None
    if length < 0:
        raise ApiError(400, "bad_request", "Content-Length is negative.")
    if length > max_bytes:
        raise _too_big(max_bytes)
    try:
        body = request.body
    except RequestDataTooBig:
        raise _too_big(max_bytes) from None
    if len(body) > max_bytes:
        raise _too_big(max_bytes)
    return body


def _too_big(max_bytes: int) -> ApiError:
    return ApiError(413, "body_too_large", f"The body is larger than {max_bytes} bytes.")


def parse_json_object(request: HttpRequest, body: bytes, *, optional: bool) -> dict[str, Any]:
    """Decode a JSON object body; an empty body is {} when `optional`."""
    if not body.strip():
        if optional:
            return {}
        raise ApiError(400, "invalid_json", "The body must be a JSON object.")
    if request.content_type != "application/json":
        raise ApiError(
            415, "unsupported_media_type", "Send the body as Content-Type: application/json."
        )
    charset = (request.content_params or {}).get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise ApiError(415, "unsupported_media_type", "The body must be UTF-8.")
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ApiError(
            400, "invalid_json", f"The body is not valid JSON: {short(str(exc))}"
        ) from None
    if not isinstance(value, dict):
        raise ApiError(400, "invalid_json", "The body must be a JSON object.")
    problem = storable_problem(value)
    if problem:
        raise ApiError(400, "invalid_json", problem)
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def storable_problem(value: Any, depth: int = 0) -> str | None:
    """Why a JSON value cannot be stored (PostgreSQL jsonb refuses NUL and lone surrogates)."""
    if depth > MAX_JSON_DEPTH:
        return f"The JSON is nested deeper than {MAX_JSON_DEPTH} levels."
    if isinstance(value, str):
        return _string_problem(value)
    if isinstance(value, dict):
        for key, item in value.items():
            problem = _string_problem(key) or storable_problem(item, depth + 1)
            if problem:
                return problem
    elif isinstance(value, list):
        for item in value:
            problem = storable_problem(item, depth + 1)
            if problem:
                return problem
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**64:
        return "Integers must fit in 64 bits."
    return None


def _string_problem(text: str) -> str | None:
    if "\x00" in text:
        return "Strings may not contain the NUL character."
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "Strings may not contain unpaired surrogates."
    return None


def validate_body(name: str, value: dict[str, Any]) -> dict[str, Any]:
    """Check a decoded body against its request schema; 400 naming each bad field."""
    fields = field_errors(component_validator(name), value)
    if fields:
        raise ApiError(
            400, "invalid_request", "The body has invalid or unknown fields.", fields=fields
        )
    return value


def query_params(request: HttpRequest, allowed: set[str]) -> QueryDict:
    try:
        params = request.GET
        unknown = sorted(set(params) - allowed)
    except SuspiciousOperation as exc:  # e.g. too many fields
        raise ApiError(400, "bad_request", str(exc)) from None
    if unknown:
        names = ", ".join(repr(name[:50]) for name in unknown[:5])
        raise ApiError(400, "unknown_parameter", f"Unknown query parameters: {names}.")
    return params


def int_param(params: QueryDict, name: str, *, default: int, minimum: int, maximum: int) -> int:
    raw = params.getlist(name)
    if not raw:
        return default
    if len(raw) > 1:
        raise ApiError(400, "bad_parameter", f"Give `{name}` once.", fields={name: ["Repeated."]})
    text = raw[0].strip()
    if not re.fullmatch(r"[0-9]{1,19}", text) or not minimum <= int(text) <= maximum:
        raise ApiError(
            400,
            "bad_parameter",
            f"`{name}` must be an integer from {minimum} to {maximum}.",
            fields={name: [f"An integer from {minimum} to {maximum}."]},
        )
    return int(text)


def header_token(request: HttpRequest, header: str) -> str | None:
    """An optional printable-ASCII header of at most 128 characters (ids, idempotency keys)."""
    value = request.headers.get(header)
    if value is None:
        return None
    if not _PRINTABLE_ASCII.fullmatch(value):
        raise ApiError(
            400,
            "bad_header",
            f"{header} must be 1 to 128 printable ASCII characters without spaces.",
            fields={header: ["1 to 128 printable ASCII characters."]},
        )
    return value
