import threading

import pytest
from django.db import connection

from runs.models import Run
from tests.api.helpers import make_client

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_starts_one_run_when_requests_with_the_same_key_race(workflow, alice_token):
    racers = 6
    barrier = threading.Barrier(racers)
    answers: list[tuple[int, int]] = []

    def race():
        try:
            client = make_client(alice_token[1])
            barrier.wait()
            response = client.post(
                "/api/workflows/numbers/runs",
                {"input": {"count": 1}},
                content_type="application/json",
                headers={"Idempotency-Key": "race-1"},
            )
            answers.append((response.status_code, response.json().get("id")))
        finally:
            connection.close()

    threads = [threading.Thread(target=race) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # Every racer got an answer naming the same run, and only one run exists.
    assert len(answers) == racers
    assert {status for status, _ in answers} <= {200, 201}
    assert len({run_id for _, run_id in answers}) == 1
    assert Run.objects.filter(idempotency_key__endswith=":race-1").count() == 1
