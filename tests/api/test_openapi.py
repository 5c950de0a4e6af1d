import pytest
from django.urls import resolve
from openapi_spec_validator import validate

from api.openapi import DOCUMENT
from tests.api.helpers import assert_matches_openapi


def test_it_serves_a_valid_openapi_3_1_document(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    # It should pass the OpenAPI 3.1 meta-schema (raises otherwise).
    validate(document)
    assert_matches_openapi(response, "GET", "/api/openapi.json")


@pytest.mark.parametrize("template", sorted(DOCUMENT["paths"]))
def test_it_routes_every_documented_path_to_a_real_view(template):
    sample = template.replace("{slug}", "numbers").replace("{run_id}", "1")
    sample = sample.replace("{token}", "abc")
    match = resolve(sample)
    assert match.url_name != "unknown", f"{template} is documented but not served"


def test_it_answers_unknown_api_paths_with_the_json_error_shape(client):
    for path in ("/api/nope", "/api/runs/x", "/api/runs/1/", "/api/workflows/a/b/c"):
        response = client.get(path)
        assert response.status_code == 404
        assert set(response.json()["error"]) == {"code", "message", "fields"}
