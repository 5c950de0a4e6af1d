import hashlib

import pytest
from django.db import connection

from api.models import ApiToken
from api.tokens import create_token
from runs.models import Run
from tests.api.helpers import assert_matches_openapi, make_client

pytestmark = pytest.mark.django_db


def _all_text_in_database() -> str:
    tables = connection.introspection.table_names()
    dump = []
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f'SELECT * FROM "{table}"')
            dump.extend(str(row) for row in cursor.fetchall())
    return "\n".join(dump)


def test_it_stores_only_a_prefix_and_the_sha256_of_the_token(alice):
    token, text = create_token(alice, name="ci", scopes=["read"])
    token.refresh_from_db()
    # It should keep the hash and a lookup prefix, never the token itself.
    assert token.token_hash == hashlib.sha256(text.encode()).hexdigest()
    assert token.prefix in text
    # The secret is everything after "apst_<prefix>_": urlsafe text, which may itself hold "_".
    secret = text.split("_", 2)[2]
    assert len(secret) >= 40
    assert secret not in _all_text_in_database()


def test_it_authenticates_a_bearer_token_and_records_its_last_use(alice, workflow):
    token, text = create_token(alice, name="ci", scopes=["read"])
    assert token.last_used_at is None
    response = make_client(text).get("/api/workflows")
    assert response.status_code == 200
    assert_matches_openapi(response, "GET", "/api/workflows")
    assert "numbers" in [w["slug"] for w in response.json()["workflows"]]
    token.refresh_from_db()
    assert token.last_used_at is not None


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Basic YWxpY2U6cGFzc3dvcmQ=", "Bearer apst_nope_nope", "Token x"],
)
def test_it_answers_401_without_a_valid_token(header, alice):
    create_token(alice, name="ci", scopes=["read"])
    headers = {"Authorization": header} if header is not None else {}
    response = make_client(None).get("/api/workflows", headers=headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert_matches_openapi(response, "GET", "/api/workflows")
    assert response.json()["error"]["code"] in {"unauthenticated", "invalid_token"}


def test_it_refuses_a_token_whose_secret_is_wrong_even_with_a_real_prefix(alice):
    _, text = create_token(alice, name="ci", scopes=["read"])
    forged = text[:-4] + ("AAAA" if not text.endswith("AAAA") else "BBBB")
    assert make_client(forged).get("/api/workflows").status_code == 401


def test_it_refuses_a_revoked_token(alice):
    token, text = create_token(alice, name="ci", scopes=["read"])
    client = make_client(text)
    assert client.get("/api/workflows").status_code == 200
    token.revoke()
    response = client.get("/api/workflows")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"


def test_it_refuses_the_token_of_a_deactivated_user(alice):
    _, text = create_token(alice, name="ci", scopes=["read"])
    alice.is_active = False
    alice.save()
    assert make_client(text).get("/api/workflows").status_code == 401


def test_it_answers_403_when_the_token_lacks_the_scope(alice, workflow):
    _, text = create_token(alice, name="reader", scopes=["read"])
    response = make_client(text).post(
        "/api/workflows/numbers/runs", {"input": {"count": 1}}, content_type="application/json"
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"
    assert_matches_openapi(response, "POST", "/api/workflows/{slug}/runs")
    # It should not have started anything.
    assert Run.objects.count() == 0


def test_it_answers_403_when_the_user_lacks_the_permission(bob, charlie, workflow):
    # Charlie has no permissions: a token with every scope still reads nothing.
    _, charlies = create_token(charlie, name="all", scopes=["read", "run", "cancel"])
    response = make_client(charlies).get("/api/workflows")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    # Bob may view but not run: the run scope does not give him that.
    _, bobs = create_token(bob, name="all", scopes=["read", "run", "cancel"])
    assert make_client(bobs).get("/api/workflows").status_code == 200
    response = make_client(bobs).post(
        "/api/workflows/numbers/runs", {"input": {"count": 1}}, content_type="application/json"
    )
    assert response.status_code == 403
    assert Run.objects.count() == 0


def test_it_refuses_unknown_scopes(alice):
    with pytest.raises(ValueError):
        create_token(alice, name="x", scopes=["admin"])


def test_it_shows_a_token_created_in_the_admin_once(alice_client, alice):
    response = alice_client.post(
        "/admin/api/apitoken/add/",
        {"user": alice.pk, "name": "deploys", "can_read": "on", "can_run": "on"},
    )
    assert response.status_code == 200
    token = ApiToken.objects.get(name="deploys")
    text = response.context["token_text"]
    assert text.startswith(f"apst_{token.prefix}_")
    assert text in response.content.decode()
    assert token.token_hash == hashlib.sha256(text.encode()).hexdigest()
    assert token.scopes == ["read", "run"]
    # It should never appear again: not on the change page, not in the list.
    for url in (f"/admin/api/apitoken/{token.pk}/change/", "/admin/api/apitoken/"):
        page = alice_client.get(url)
        assert page.status_code == 200
        assert text not in page.content.decode()
        assert token.token_hash not in page.content.decode()
    # And the token works.
    assert make_client(text).get("/api/workflows").status_code == 200


def test_it_revokes_tokens_from_the_admin(alice_client, alice):
    token, text = create_token(alice, name="old", scopes=["read"])
    response = alice_client.post(
        "/admin/api/apitoken/", {"action": "revoke", "_selected_action": [token.pk]}
    )
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.is_revoked
    assert make_client(text).get("/api/workflows").status_code == 401


def test_it_lets_staff_see_and_create_only_their_own_tokens(bob, alice):
    from django.contrib.auth.models import Permission
    from django.test import Client

    bob.user_permissions.add(
        *Permission.objects.filter(codename__in=["add_apitoken", "view_apitoken"])
    )
    create_token(alice, name="alice's", scopes=["read"])
    client = Client()
    client.force_login(bob)
    listing = client.get("/admin/api/apitoken/").content.decode()
    assert "alice&#x27;s" not in listing and "alice's" not in listing
    # Posting alice as the owner still makes the token bob's.
    response = client.post(
        "/admin/api/apitoken/add/", {"user": alice.pk, "name": "mine", "can_read": "on"}
    )
    assert response.status_code in (200, 302)
    assert not ApiToken.objects.filter(name="mine", user=alice).exists()
