import threading

import pytest

from credentials.services import create_credential
from workflows.nodes.base import StepError, StepTimeout
from workflows.nodes.registry import get_node_type

script = get_node_type("script")


def test_it_outputs_the_last_stdout_line_when_it_is_json(make_ctx):
    source = "import json, sys\nrows = json.load(sys.stdin)\nprint('working')\nprint(json.dumps({'n': len(rows)}))\n"
    ctx = make_ctx({"language": "python", "source": source, "input": [1, 2, 3]}, timeout=10)
    assert script.execute(ctx) == {"n": 3}


def test_it_outputs_stdout_and_exit_code_when_the_last_line_is_not_json(make_ctx):
    ctx = make_ctx({"language": "shell", "source": "echo hello"}, timeout=10)
    assert script.execute(ctx) == {"stdout": "hello\n", "exit_code": 0}


def test_it_fails_the_step_on_a_non_zero_exit_with_stderr_in_the_error(make_ctx):
    ctx = make_ctx({"language": "shell", "source": "echo broken >&2; exit 4"}, timeout=10)
    with pytest.raises(StepError, match="exit code 4: broken"):
        script.execute(ctx)


def test_it_raises_a_step_timeout_when_the_script_runs_too_long(make_ctx):
    ctx = make_ctx({"language": "shell", "source": "sleep 30"}, timeout=0.3)
    with pytest.raises(StepTimeout, match="timed out"):
        script.execute(ctx)


def test_it_stops_with_a_non_retryable_error_when_cancelled(make_ctx):
    ctx = make_ctx({"language": "shell", "source": "sleep 30"}, timeout=30)
    threading.Timer(0.2, ctx.cancel.set).start()
    with pytest.raises(StepError, match="cancelled") as caught:
        script.execute(ctx)
    assert caught.value.retryable is False


def test_it_streams_output_lines_to_the_step_log(make_ctx):
    logs = []
    ctx = make_ctx({"language": "shell", "source": "echo a; echo b"}, timeout=10, logs=logs)
    script.execute(ctx)
    assert logs == ["a", "b"]


def test_it_gives_env_values_as_strings(make_ctx):
    source = 'echo "$COUNT-$NAME"'
    ctx = make_ctx({"language": "shell", "source": source, "env": {"COUNT": 3, "NAME": "x"}})
    assert script.execute(ctx) == {"stdout": "3-x\n", "exit_code": 0}


@pytest.mark.django_db
def test_it_puts_credential_fields_in_the_environment_and_their_secrets_in_ctx(make_ctx):
    create_credential(
        name="warehouse",
        type="fields",
        fields={"user": "loader"},
        secrets={"password": "s3cret-value"},
        allowed_workflows=["etl"],
    )
    config = {
        "language": "shell",
        "source": 'echo "$DB_USER:$DB_PASSWORD"',
        "credentials": {"DB_USER": "warehouse.user", "DB_PASSWORD": "warehouse.password"},
    }
    ctx = make_ctx(config, timeout=10, slug="etl")
    assert script.execute(ctx)["stdout"] == "loader:s3cret-value\n"
    assert "s3cret-value" in ctx.secrets


@pytest.mark.django_db
def test_it_refuses_a_credential_the_workflow_may_not_use(make_ctx):
    create_credential(
        name="warehouse",
        type="fields",
        secrets={"password": "s3cret-value"},
        allowed_workflows=["etl"],
    )
    config = {"source": "true", "credentials": {"P": "warehouse.password"}}
    ctx = make_ctx(config, timeout=10, slug="other")
    with pytest.raises(StepError, match="may not use") as caught:
        script.execute(ctx)
    assert caught.value.retryable is False


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "source"),
        ({"source": "", "language": "python"}, "source"),
        ({"source": "x", "language": "ruby"}, "language"),
        ({"source": "x", "env": {"PATH": "/tmp"}}, "env.PATH"),
        ({"source": "x", "env": {"A": 1}}, "env.A"),
        ({"source": "x", "env": "nope"}, "env"),
        ({"source": "x", "credentials": {"TOKEN": "no-field"}}, "credentials.TOKEN"),
        ({"source": "x", "memory_limit_mb": 1}, "memory_limit_mb"),
        ({"source": "x", "image": "ubuntu"}, "image"),
    ],
)
def test_it_rejects_invalid_config(config, field):
    assert field in [f for f, _ in script.validate_config(config)]


def test_it_is_not_idempotent_by_default():
    assert script.is_idempotent({"source": "x"}) is False


def test_it_fails_cleanly_when_an_expression_rendered_a_wrong_type(make_ctx):
    with pytest.raises(StepError, match=r"config\.env must be an object"):
        script.execute(make_ctx({"source": "true", "env": [1, 2]}))
