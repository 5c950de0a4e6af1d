import pytest

from workflows.definition import DefinitionError, compile_definition
from workflows.flows import StepRef, Workflow, code_workflows, function, unregister
from workflows.nodes.python import get_function


def fetch_orders(limit):
    return {"orders": list(range(limit))}


@function("tests.count_items")
def count_items(items):
    return {"count": len(items)}


@pytest.fixture
def declared():
    made = []

    def declare(slug, **kwargs):
        made.append(slug)
        return Workflow(slug, **kwargs)

    yield declare
    for slug in made:
        unregister(slug)


def test_it_compiles_to_the_same_json_as_a_hand_written_definition(declared):
    wf = declared("orders-flow", input_schema={"type": "object"}, policies={"concurrency": 2})
    fetch = wf.python(
        "fetch", function=fetch_orders, args={"limit": "{{ input.limit }}"}, retries=3, timeout=20
    )
    count = wf.python(
        "count",
        function="tests.count_items",
        args={"items": "{{ steps.fetch.output.orders }}"},
        depends_on=[fetch],
    )
    wf.branch(
        "pick",
        cases=[("steps.count.output.count > 3", ["many"])],
        default=["few"],
        depends_on=count,
    )
    wf.wait("many", seconds=1, depends_on=["pick"])
    wf.script("few", source="echo few", language="shell", depends_on=["pick"], idempotent=True)
    wf.http(
        "notify",
        url="https://hooks.example.com/x",
        method="POST",
        json={"n": 1},
        depends_on=[count],
        when="steps.count.output.count > 0",
    )

    by_hand = {
        "slug": "orders-flow",
        "input_schema": {"type": "object"},
        "policies": {"concurrency": 2},
        "steps": [
            {
                "id": "fetch",
                "type": "python",
                "config": {
                    "function": "tests.fetch_orders",
                    "args": {"limit": "{{ input.limit }}"},
                },
                "policies": {"retries": {"max_attempts": 3}, "timeout_seconds": 20},
            },
            {
                "id": "count",
                "type": "python",
                "depends_on": ["fetch"],
                "config": {
                    "function": "tests.count_items",
                    "args": {"items": "{{ steps.fetch.output.orders }}"},
                },
            },
            {
                "id": "pick",
                "type": "branch",
                "depends_on": ["count"],
                "config": {
                    "cases": [{"when": "{{ steps.count.output.count > 3 }}", "then": ["many"]}],
                    "default": ["few"],
                },
            },
            {"id": "many", "type": "wait", "depends_on": ["pick"], "config": {"seconds": 1}},
            {
                "id": "few",
                "type": "script",
                "depends_on": ["pick"],
                "policies": {"idempotent": True},
                "config": {"language": "shell", "source": "echo few"},
            },
            {
                "id": "notify",
                "type": "http",
                "depends_on": ["count"],
                "when": "{{ steps.count.output.count > 0 }}",
                "config": {
                    "method": "POST",
                    "url": "https://hooks.example.com/x",
                    "json": {"n": 1},
                },
            },
        ],
    }
    assert wf.compile() == compile_definition(by_hand)


def test_it_registers_the_functions_it_names_under_package_dot_name(declared):
    wf = declared("fn-flow")
    wf.python("one", function=fetch_orders, args={"limit": 1})
    assert wf.to_definition()["steps"][0]["config"]["function"] == "tests.fetch_orders"
    assert get_function("tests.fetch_orders") is fetch_orders
    assert get_function("tests.count_items") is count_items


def test_it_gives_step_refs_an_output_expression():
    ref = StepRef("fetch")
    assert ref.output == "{{ steps.fetch.output }}"
    assert str(ref) == "fetch"


def test_it_registers_each_workflow_by_slug_once(declared):
    wf = declared("unique-flow")
    wf.wait("w", seconds=0)
    assert code_workflows()["unique-flow"] is wf
    assert {"demo-pipeline", "demo-flaky", "demo-long"} <= set(code_workflows())


def test_it_raises_definition_errors_for_invalid_flows(declared):
    wf = declared("broken-flow")
    wf.wait("w", seconds=-3)
    wf.python("p", function="not.registered", depends_on=["w", "ghost"])
    with pytest.raises(DefinitionError) as caught:
        wf.compile()
    fields = {(e["step"], e["field"]) for e in caught.value.errors}
    assert fields == {("w", "config.seconds"), ("p", "config.function"), ("p", "depends_on")}


@pytest.mark.parametrize("slug", ["demo-pipeline", "demo-flaky", "demo-long"])
def test_it_ships_valid_demo_workflows(slug):
    canonical = code_workflows()[slug].compile()
    assert canonical["slug"] == slug


def test_it_declares_sub_workflow_steps(declared):
    wf = declared("parent-flow")
    wf.workflow("child", workflow="demo-flaky", input={"fail": "{{ input.fail }}"})
    step = wf.compile()["steps"][0]
    assert (step["type"], step["config"]) == (
        "workflow",
        {"workflow": "demo-flaky", "input": {"fail": "{{ input.fail }}"}},
    )


def test_it_warns_about_invalid_code_workflows_in_the_system_check(declared):
    from django.core import checks

    from workflows.checks import check_code_workflows

    assert check_code_workflows() == []
    wf = declared("typo-flow")
    wf.wait("w", seconds="soon")
    warnings = check_code_workflows()
    assert [w.id for w in warnings] == ["workflows.W001"]
    assert "'typo-flow'" in warnings[0].msg and "config.seconds" in warnings[0].msg
    assert warnings[0].level == checks.WARNING  # not an error: the server still starts
