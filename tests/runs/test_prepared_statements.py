"""On PostgreSQL the engine's statements are prepared once per connection (and not at all when
DATABASE_PREPARED_STATEMENTS is off), while the ORM's queries never are."""

import pytest
from django.db import connection

from runs import services
from runs.models import Run
from tests.runs.conftest import chain, make_workflow, py

pytestmark = [pytest.mark.postgresql, pytest.mark.django_db(transaction=True)]


def _prepared_on_this_connection() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def _run_twice() -> None:
    workflow = make_workflow(chain("prepared", 3, "echo"))
    for _ in range(2):
        run = services.start_run(workflow, input={})
        services.execute_run(run.pk, executor_id="test-prepared")
        run.refresh_from_db()
        assert run.status == Run.Status.SUCCEEDED, run.error


def test_it_prepares_each_engine_statement_once_per_connection():
    connection.close()  # a fresh connection: nothing prepared on it yet
    _run_twice()
    prepared = _prepared_on_this_connection()
    # It should hold the run insert, the claim read and the run loop's flushes...
    assert any(sql.startswith("WITH r AS (INSERT INTO runs_run") for sql in prepared)
    assert any(sql.startswith('SELECT r."id"') for sql in prepared)
    assert any(sql.startswith("WITH upd AS (UPDATE runs_run") for sql in prepared)
    assert any(sql.startswith("WITH prev AS (SELECT") for sql in prepared)
    # ...each shape once, although two runs used them...
    assert len(prepared) == len(set(prepared))
    # ...and none of the ORM's queries (Django's cursors bind on the client).
    assert not any('"runs_run"."id"' in sql for sql in prepared)


def test_it_prepares_nothing_when_the_setting_is_off(settings):
    settings.DATABASE_PREPARED_STATEMENTS = False
    connection.close()
    _run_twice()
    assert _prepared_on_this_connection() == []


def test_it_writes_every_workflow_with_the_same_three_flush_statements():
    connection.close()
    _run_twice()
    fan_out = make_workflow(
        {
            "slug": "prepared-fan-out",
            "steps": [
                py("a", "echo"),
                py("b", "echo", depends_on=["a"]),
                py("c", "echo", depends_on=["a"]),
                py("d", "echo", depends_on=["b", "c"]),
            ],
        }
    )
    run = services.start_run(fan_out, input={})
    services.execute_run(run.pk, executor_id="test-prepared")
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert [s.status for s in run.steps.all()] == ["succeeded"] * 4
    # Claim, turn and final: the step changes and events are parameters, not statement text,
    # so a worker serving many workflows keeps a bounded set of prepared statements.
    flushes = {sql for sql in _prepared_on_this_connection() if sql.startswith("WITH ")}
    flushes = {sql for sql in flushes if not sql.startswith("WITH r AS (INSERT")}
    assert len(flushes) == 3
