import copy

import pytest

from workflows.definition import DefinitionError, compile_definition, content_hash
from workflows.nodes.python import register_function


def double(n):
    return {"n": n * 2}


register_function(double, "tests.double")


def valid():
    return {
        "slug": "orders",
        "input_schema": {"type": "object", "properties": {"n": {"type": "integer"}}},
        "steps": [
            {
                "id": "first",
                "type": "python",
                "config": {"function": "tests.double", "args": {"n": "{{ input.n }}"}},
            },
            {
                "id": "second",
                "type": "python",
                "depends_on": ["first"],
                "config": {"function": "tests.double", "args": {"n": "{{ steps.first.output.n }}"}},
            },
        ],
    }


def errors_of(raw):
    with pytest.raises(DefinitionError) as caught:
        compile_definition(raw)
    return [(e["step"], e["field"], e["message"]) for e in caught.value.errors]


def test_it_fills_every_default():
    canonical = compile_definition(valid())
    assert canonical["name"] == "orders"
    assert canonical["description"] == ""
    assert canonical["output"] is None
    assert canonical["policies"] == {
        "timeout_seconds": None,
        "max_step_executions": 200,
        "concurrency": None,
        "queue": "appstrate",
        "allow_private_network": False,
    }
    first = canonical["steps"][0]
    assert first["depends_on"] == [] and first["when"] is None
    assert first["policies"] == {
        "timeout_seconds": 300,
        "idempotent": None,
        "retries": {
            "max_attempts": 1,
            "backoff": "exponential",
            "delay_seconds": 1.0,
            "max_delay_seconds": 60.0,
            "jitter": True,
            "retry_on": ["error", "timeout"],
        },
    }


def test_it_is_stable_so_equal_definitions_hash_equally():
    once = compile_definition(valid())
    assert compile_definition(copy.deepcopy(once)) == once  # canonical is a fixed point
    explicit = valid()
    explicit["policies"] = {"max_step_executions": 200}
    explicit["steps"][0]["policies"] = {"retries": 1}
    assert content_hash(compile_definition(explicit)) == content_hash(once)
    changed = valid()
    changed["steps"][0]["policies"] = {"retries": 2}
    assert content_hash(compile_definition(changed)) != content_hash(once)


def test_it_does_not_modify_its_argument():
    raw = valid()
    before = copy.deepcopy(raw)
    compile_definition(raw)
    assert raw == before


def test_it_canonicalises_bare_conditions_and_methods():
    raw = valid()
    raw["steps"][1]["when"] = "steps.first.output.n > 2"
    raw["steps"].append(
        {"id": "call", "type": "http", "config": {"url": "https://example.com", "method": "post"}}
    )
    canonical = compile_definition(raw)
    assert canonical["steps"][1]["when"] == "{{ steps.first.output.n > 2 }}"
    assert canonical["steps"][2]["config"]["method"] == "POST"


def with_change(change):
    raw = valid()
    change(raw)
    return raw


def set_path(path, value):
    def change(raw):
        target = raw
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


CASES = [
    # top level
    (set_path(["bogus"], 1), None, "bogus", "unknown field"),
    (set_path(["slug"], "Not A Slug"), None, "slug", "lower-case"),
    (set_path(["name"], 5), None, "name", "must be a string"),
    (set_path(["description"], ["x"]), None, "description", "must be a string"),
    (
        set_path(["input_schema"], {"type": "objekt"}),
        None,
        "input_schema",
        "not a valid JSON Schema",
    ),
    (set_path(["input_schema"], {"type": "array"}), None, "input_schema", "type must be 'object'"),
    (set_path(["input_schema"], "object"), None, "input_schema", "JSON Schema object"),
    (
        set_path(["input_schema"], {"properties": {"n": {"minimum": "zero"}}}),
        None,
        "input_schema",
        "not a valid JSON Schema at /properties/n/minimum",
    ),
    (set_path(["steps"], []), None, "steps", "non-empty list"),
    (set_path(["steps"], {"a": 1}), None, "steps", "non-empty list"),
    (set_path(["output"], "{{ steps.nope.output }}"), None, "output", "which is not a step"),
    (set_path(["output"], "{{ steps.first.output. }}"), None, "output", "expected a key"),
    # workflow policies
    (set_path(["policies"], {"retries": 3}), None, "policies.retries", "unknown field"),
    (
        set_path(["policies"], {"timeout_seconds": 0}),
        None,
        "policies.timeout_seconds",
        "null or 0 <",
    ),
    (
        set_path(["policies"], {"timeout_seconds": "1h"}),
        None,
        "policies.timeout_seconds",
        "null or",
    ),
    (
        set_path(["policies"], {"max_step_executions": 0}),
        None,
        "policies.max_step_executions",
        "1 to",
    ),
    (
        set_path(["policies"], {"concurrency": -1}),
        None,
        "policies.concurrency",
        "null or an integer",
    ),
    (
        set_path(["policies"], {"concurrency": True}),
        None,
        "policies.concurrency",
        "null or an integer",
    ),
    (set_path(["policies"], {"queue": "bad queue!"}), None, "policies.queue", "letters"),
    (
        set_path(["policies"], {"allow_private_network": "yes"}),
        None,
        "policies.allow_private_network",
        "true or false",
    ),
    (set_path(["policies"], []), None, "policies", "must be an object"),
    # steps
    (set_path(["steps", 0], "first"), None, "steps[0]", "must be an object"),
    (set_path(["steps", 0, "id"], "First"), "First", "id", "must match"),
    (set_path(["steps", 0, "id"], None), "steps[0]", "id", "must match"),
    (set_path(["steps", 1, "id"], "first"), "first", "id", "used by another step"),
    (set_path(["steps", 0, "colour"], "red"), "first", "colour", "unknown field"),
    (set_path(["steps", 0, "type"], "teleport"), "first", "type", "unknown node type"),
    (set_path(["steps", 0, "config"], []), "first", "config", "must be an object"),
    (
        set_path(["steps", 0, "config", "function"], "os.system"),
        "first",
        "config.function",
        "no registered function",
    ),
    (set_path(["steps", 0, "config", "extra"], 1), "first", "config.extra", "unknown field"),
    (set_path(["steps", 1, "depends_on"], "first"), "second", "depends_on", "list of step ids"),
    (set_path(["steps", 1, "depends_on"], ["first", "first"]), "second", "depends_on", "twice"),
    (
        set_path(["steps", 1, "depends_on"], ["ghost"]),
        "second",
        "depends_on",
        "unknown step 'ghost'",
    ),
    (set_path(["steps", 0, "depends_on"], ["first"]), "first", "depends_on", "itself"),
    (set_path(["steps", 0, "depends_on"], ["second"]), "first", "depends_on", "dependency cycle"),
    (set_path(["steps", 0, "when"], 3), "first", "when", "null or an expression"),
    (set_path(["steps", 0, "when"], "steps.second.output"), "first", "when", "not an ancestor"),
    # expressions in config
    (
        set_path(["steps", 0, "config", "args", "n"], "{{ input.__class__ }}"),
        "first",
        "config.args.n",
        "names starting with '_'",
    ),
    (
        set_path(["steps", 0, "config", "args", "n"], "{{ steps.second.output }}"),
        "first",
        "config.args.n",
        "not an ancestor",
    ),
    (
        set_path(["steps", 0, "config", "args", "n"], "{{ steps.ghost.output }}"),
        "first",
        "config.args.n",
        "which is not a step",
    ),
    (
        set_path(["steps", 0, "config", "args", "n"], ["ok", "{{ oops( }}"]),
        "first",
        "config.args.n[1]",
        "unknown function oops()",
    ),
    (
        set_path(["steps", 0, "config", "args", "n"], "{{ input.n"),
        "first",
        "config.args.n",
        "without a matching",
    ),
    (
        set_path(["steps", 0, "config", "args", "n"], "{{ 'x' * 999999999 }}"),
        "first",
        "config.args.n",
        "repeating strings",
    ),
    # step policies
    (set_path(["steps", 0, "policies"], "fast"), "first", "policies", "must be an object"),
    (set_path(["steps", 0, "policies"], {"speed": 1}), "first", "policies.speed", "unknown field"),
    (
        set_path(["steps", 0, "policies"], {"timeout_seconds": 0}),
        "first",
        "policies.timeout_seconds",
        "0 < seconds",
    ),
    (
        set_path(["steps", 0, "policies"], {"idempotent": "yes"}),
        "first",
        "policies.idempotent",
        "null, true or false",
    ),
    (
        set_path(["steps", 0, "policies"], {"retries": "many"}),
        "first",
        "policies.retries",
        "object or a number",
    ),
    (
        set_path(["steps", 0, "policies"], {"retries": {"max_attempts": 0}}),
        "first",
        "policies.retries.max_attempts",
        "1 to 100",
    ),
    (
        set_path(["steps", 0, "policies"], {"retries": {"backoff": "random"}}),
        "first",
        "policies.retries.backoff",
        "fixed, exponential",
    ),
    (
        set_path(["steps", 0, "policies"], {"retries": {"delay_seconds": -1}}),
        "first",
        "policies.retries.delay_seconds",
        "0 to 86400",
    ),
    (
        set_path(
            ["steps", 0, "policies"], {"retries": {"delay_seconds": 5, "max_delay_seconds": 1}}
        ),
        "first",
        "policies.retries.max_delay_seconds",
        "at least delay_seconds",
    ),
    (
        set_path(["steps", 0, "policies"], {"retries": {"jitter": 1}}),
        "first",
        "policies.retries.jitter",
        "true or false",
    ),
    (
        set_path(["steps", 0, "policies"], {"retries": {"retry_on": ["crash"]}}),
        "first",
        "policies.retries.retry_on",
        "error, timeout",
    ),
    (
        set_path(["steps", 0, "policies"], {"retries": {"tries": 2}}),
        "first",
        "policies.retries.tries",
        "unknown field",
    ),
]


@pytest.mark.parametrize(("change", "step", "field", "message"), CASES)
def test_it_names_the_step_and_field_of_each_error(change, step, field, message):
    found = errors_of(with_change(change))
    assert any(s == step and f == field and message in m for s, f, m in found), found


def test_it_reports_every_problem_at_once():
    raw = valid()
    raw["slug"] = "Bad"
    raw["steps"][0]["type"] = "teleport"
    raw["steps"][1]["policies"] = {"timeout_seconds": -5}
    fields = {(s, f) for s, f, _ in errors_of(raw)}
    assert {(None, "slug"), ("first", "type"), ("second", "policies.timeout_seconds")} <= fields


def test_it_rejects_things_that_are_not_definitions():
    assert errors_of([1, 2]) == [(None, "", "must be a JSON object")]
    assert errors_of(None) == [(None, "", "must be a JSON object")]
    huge = valid()
    huge["description"] = "x" * 1_100_000
    assert "larger than" in errors_of(huge)[0][2]
    assert "not JSON" in errors_of({"slug": "x", "steps": {1, 2}})[0][2]


def test_it_finds_long_cycles_and_names_the_path():
    steps = [
        {"id": f"s{i}", "type": "wait", "config": {"seconds": 0}, "depends_on": [f"s{(i + 1) % 4}"]}
        for i in range(4)
    ]
    found = errors_of({"slug": "loop", "steps": steps})
    assert any("dependency cycle: s0 -> s1 -> s2 -> s3 -> s0" in m for _, _, m in found), found


def test_it_allows_reading_any_ancestor_not_only_parents():
    raw = valid()
    raw["steps"].append(
        {
            "id": "third",
            "type": "wait",
            "depends_on": ["second"],
            "config": {"seconds": "{{ steps.first.output.n }}"},
        }
    )
    assert compile_definition(raw)["steps"][2]["depends_on"] == ["second"]


def test_it_checks_branch_targets_are_direct_dependents():
    raw = valid()
    raw["steps"].append(
        {
            "id": "pick",
            "type": "branch",
            "depends_on": ["first"],
            "config": {"cases": [{"when": "true", "then": ["second"]}], "default": ["first"]},
        }
    )
    found = errors_of(raw)
    assert (
        "pick",
        "config.cases[0].then",
        "'second' is not a step that depends directly on this branch",
    ) in found
    assert (
        "pick",
        "config.default",
        "'first' is not a step that depends directly on this branch",
    ) in found
    raw["steps"][1]["depends_on"] = ["first", "pick"]
    raw["steps"][2]["config"]["default"] = []
    assert compile_definition(raw)["steps"][2]["config"]["cases"][0]["when"] == "{{ true }}"


@pytest.mark.django_db
def test_it_checks_credentials_exist_and_may_be_used_by_this_workflow():
    from credentials.services import create_credential

    raw = {
        "slug": "caller",
        "steps": [
            {
                "id": "call",
                "type": "http",
                "config": {"url": "https://api.example.com", "credential": "github"},
            },
            {
                "id": "run",
                "type": "script",
                "config": {"source": "true", "credentials": {"TOKEN": "github.token"}},
            },
        ],
    }
    found = errors_of(raw)
    assert ("call", "config.credential", "Credential 'github' does not exist.") in found
    assert ("run", "config.credentials.TOKEN", "Credential 'github' does not exist.") in found
    create_credential(
        name="github",
        type="bearer_token",
        secrets={"token": "t0k3n-value"},
        allowed_hosts=["api.example.com"],
        allowed_workflows=["someone-else"],
    )
    found = errors_of(raw)
    assert (
        "call",
        "config.credential",
        "Workflow 'caller' may not use credential 'github'.",
    ) in found
    raw["slug"] = "someone-else"
    assert compile_definition(raw)["steps"][0]["config"]["credential"] == "github"
