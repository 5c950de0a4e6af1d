import json
import uuid

import pytest
from django.conf import settings
from django.db import connection

from api.tokens import create_token
from tests.api.servers import request, server_env, several_daphnes


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.tier2
@pytest.mark.django_db(transaction=True)
def test_it_shares_one_rate_limit_between_two_web_processes(alice, tmp_path):
    _, text = create_token(alice, name="ci", scopes=["read"])
    env = server_env(
        tmp_path,
        DATABASE_URL=_database_url(),
        REDIS_URL=settings.REDIS_URL,
        # A prefix of its own: no count from another test (or an earlier run) leaks in.
        REDIS_PREFIX=f"{settings.REDIS_PREFIX}-shared-limit-{uuid.uuid4().hex[:8]}",
        # An hour-long window, so the window cannot roll over in the middle of the test.
        API_RATE_LIMIT="4/h",
    )
    auth = {"Authorization": f"Bearer {text}"}
    with several_daphnes(2, env, tmp_path) as (first, second):
        answers = [request(f"{base}/api/workflows", auth) for base in [first, second] * 3]
    statuses = [status for status, _, _ in answers]
    # Each server alone would allow four: together they allow four in all.
    assert statuses == [200, 200, 200, 200, 429, 429]
    _, headers, body = answers[4]
    assert int(headers["Retry-After"]) >= 1
    assert json.loads(body)["error"]["code"] == "rate_limited"
