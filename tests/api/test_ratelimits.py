import uuid

import pytest

from api.tokens import create_token
from tests.api.helpers import assert_matches_openapi, make_client

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_counters(settings):
    # Counters of their own, without clearing the cache: at tier 2 it is a Redis database that
    # the broker and other tests share.
    settings.RATELIMIT_CACHE_PREFIX = f"rl-test-{uuid.uuid4().hex}:"


def test_it_answers_429_with_retry_after_once_the_api_limit_is_spent(settings, alice):
    settings.API_RATE_LIMIT = "3/m"
    _, text = create_token(alice, name="ci", scopes=["read"])
    client = make_client(text)
    statuses = [client.get("/api/workflows").status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    response = client.get("/api/workflows")
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response.json()["error"]["code"] == "rate_limited"
    assert_matches_openapi(response, "GET", "/api/workflows")


def test_it_counts_unauthenticated_api_requests_too(settings):
    # Guessing tokens is throttled like everything else.
    settings.API_RATE_LIMIT = "2/m"
    client = make_client("apst_guess_guess")
    assert [client.get("/api/workflows").status_code for _ in range(3)] == [401, 401, 429]


def test_it_rate_limits_webhooks_separately(settings, alice):
    settings.WEBHOOK_RATE_LIMIT = "2/m"
    settings.API_RATE_LIMIT = "1/m"
    assert [
        make_client(None).post("/api/webhooks/unknown-token").status_code for _ in range(3)
    ] == [404, 404, 429]
    _, text = create_token(alice, name="ci", scopes=["read"])
    assert make_client(text).get("/api/workflows").status_code == 200


def test_it_rate_limits_admin_login_attempts_but_not_the_form(settings, client, alice):
    settings.LOGIN_RATE_LIMIT = "2/m"
    for _ in range(2):
        page = client.post("/admin/login/", {"username": "alice", "password": "wrong"})
        assert page.status_code == 200  # the form again, with an error
    response = client.post("/admin/login/", {"username": "alice", "password": "password"})
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert response.json()["error"]["code"] == "rate_limited"
    # Showing the form does not count and is not blocked.
    assert client.get("/admin/login/").status_code == 200


def test_it_lets_requests_through_when_the_rate_limit_cache_is_down(settings, alice):
    from tests.api.servers import unused_port

    settings.CACHES = {
        **settings.CACHES,
        "down": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{unused_port()}/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
        },
    }
    settings.RATELIMIT_USE_CACHE = "down"
    settings.API_RATE_LIMIT = "1/m"
    _, text = create_token(alice, name="ci", scopes=["read"])
    client = make_client(text)
    # Not a 500, and not a lock-out: the limit is simply not counted while the cache is away.
    assert [client.get("/api/workflows").status_code for _ in range(2)] == [200, 200]
