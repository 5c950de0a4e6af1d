import threading
import time

import pytest

from workflows.nodes.base import StepError
from workflows.nodes.python import register_function
from workflows.nodes.registry import get_node_type, node_type_names

python_node = get_node_type("python")
wait_node = get_node_type("wait")
branch_node = get_node_type("branch")


def add(a, b):
    return {"sum": a + b}


def attempt_number(ctx):
    return {"attempt": ctx.attempt, "step": ctx.step_id}


def explode():
    raise RuntimeError("boom")


def not_json():
    return {"when": object()}


register_function(add, "tests.add")
register_function(attempt_number, "tests.attempt_number")
register_function(explode, "tests.explode")
register_function(not_json, "tests.not_json")


def test_it_registers_the_built_in_node_types():
    assert {"python", "http", "script", "wait", "branch"} <= set(node_type_names())


def test_it_calls_a_registered_function_with_the_rendered_args(make_ctx):
    assert python_node.execute(make_ctx({"function": "tests.add", "args": {"a": 2, "b": 3}})) == {
        "sum": 5
    }


def test_it_passes_the_step_context_to_functions_that_ask_for_it(make_ctx):
    ctx = make_ctx({"function": "tests.attempt_number"}, attempt=3)
    assert python_node.execute(ctx) == {"attempt": 3, "step": "step"}


def test_it_turns_exceptions_into_step_errors(make_ctx):
    with pytest.raises(StepError, match=r"tests\.explode raised RuntimeError: boom"):
        python_node.execute(make_ctx({"function": "tests.explode"}))


def test_it_refuses_output_that_is_not_json(make_ctx):
    with pytest.raises(StepError, match="not JSON") as caught:
        python_node.execute(make_ctx({"function": "tests.not_json"}))
    assert caught.value.retryable is False


def test_it_only_calls_registered_functions_never_import_paths(make_ctx):
    problems = python_node.validate_config({"function": "os.system", "args": {"command": "id"}})
    assert problems == [("function", "no registered function named 'os.system'")]
    with pytest.raises(StepError, match="no registered function"):
        python_node.execute(make_ctx({"function": "os.system", "args": {"command": "id"}}))


def test_it_refuses_a_second_function_under_a_taken_name():
    with pytest.raises(ValueError, match="already registered"):
        register_function(explode, "tests.add")


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "function"),
        ({"function": 3}, "function"),
        ({"function": "tests.add", "args": [1]}, "args"),
        ({"function": "tests.add", "args": {"__class__": 1}}, "args.__class__"),
        ({"function": "tests.add", "args": {"ctx": 1}}, "args.ctx"),
        ({"function": "tests.add", "kwargs": {}}, "kwargs"),
    ],
)
def test_it_rejects_invalid_python_config(config, field):
    assert field in [f for f, _ in python_node.validate_config(config)]


def test_it_waits_the_given_seconds(make_ctx):
    started = time.monotonic()
    assert wait_node.execute(make_ctx({"seconds": 0.2})) == {"waited_seconds": 0.2}
    assert time.monotonic() - started >= 0.2


def test_it_stops_waiting_as_soon_as_the_run_is_cancelled(make_ctx):
    ctx = make_ctx({"seconds": 30})
    threading.Timer(0.1, ctx.cancel.set).start()
    started = time.monotonic()
    with pytest.raises(StepError, match="cancelled"):
        wait_node.execute(ctx)
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "seconds"),
        ({"seconds": -1}, "seconds"),
        ({"seconds": "soon"}, "seconds"),
        ({"seconds": 10**9}, "seconds"),
        ({"seconds": 1, "until": "x"}, "until"),
    ],
)
def test_it_rejects_invalid_wait_config(config, field):
    assert field in [f for f, _ in wait_node.validate_config(config)]


def test_it_fails_a_wait_whose_rendered_seconds_are_not_a_number(make_ctx):
    with pytest.raises(StepError, match="seconds must be a number"):
        wait_node.execute(make_ctx({"seconds": "abc"}))


def test_it_chooses_the_first_true_case_else_the_default(make_ctx):
    config = {
        "cases": [
            {"when": False, "then": ["a"]},
            {"when": 3, "then": ["b"]},
            {"when": True, "then": ["c"]},
        ],
        "default": ["d"],
    }
    assert branch_node.execute(make_ctx(config)) == {"chosen": ["b"], "case": 1}
    config["cases"][1]["when"] = None
    assert branch_node.execute(make_ctx(config)) == {"chosen": ["c"], "case": 2}
    config["cases"] = [{"when": "", "then": ["a"]}]
    assert branch_node.execute(make_ctx(config)) == {"chosen": ["d"], "case": None}


def test_it_canonicalises_bare_branch_conditions_to_expressions():
    config = branch_node.normalize_config({"cases": [{"when": "input.n > 1", "then": ["a"]}]})
    assert config == {"cases": [{"when": "{{ input.n > 1 }}", "then": ["a"]}], "default": []}


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "cases"),
        ({"cases": []}, "cases"),
        ({"cases": ["x"]}, "cases[0]"),
        ({"cases": [{"when": "true"}]}, "cases[0].then"),
        ({"cases": [{"when": "true", "then": "a"}]}, "cases[0].then"),
        ({"cases": [{"when": "true", "then": ["a"], "else": 1}]}, "cases[0].else"),
        ({"cases": [{"when": "true", "then": ["a"]}], "default": "b"}, "default"),
    ],
)
def test_it_rejects_invalid_branch_config(config, field):
    assert field in [f for f, _ in branch_node.validate_config(config)]
