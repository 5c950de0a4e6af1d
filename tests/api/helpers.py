"""Helpers for the API tests: clients with a bearer token, and the OpenAPI response check."""

from __future__ import annotations

from django.test import Client
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

from api.openapi import DOCUMENT


def make_client(token_text: str | None) -> Client:
    headers = {"Authorization": f"Bearer {token_text}"} if token_text else {}
    return Client(headers=headers)


_REGISTRY = Registry().with_resource("urn:openapi", Resource.opaque(DOCUMENT))


def assert_matches_openapi(response, method: str, template: str) -> None:
    """The response's status is documented for the operation and its body fits the schema."""
    operation = DOCUMENT["paths"][template][method.lower()]
    documented = operation["responses"]
    status = str(response.status_code)
    assert status in documented, f"{method} {template} answered undocumented {status}"
    assert response["Content-Type"].startswith("application/json")
    schema = documented[status]["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = {"$ref": "urn:openapi" + schema["$ref"]}
    validator = Draft202012Validator(schema, registry=_REGISTRY, format_checker=FormatChecker())
    errors = [
        f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(response.json())
    ]
    assert not errors, errors
