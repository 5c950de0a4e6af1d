"""Whatever JSON an operator pastes, compile_definition answers with DefinitionError or a
canonical definition: never another exception (which would be a 500 in the console)."""

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from workflows.definition import DefinitionError, compile_definition

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(["{{ input.x }}", "{{ steps.a.output }}", "{{", "a"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)

BASE = {
    "slug": "fuzz",
    "policies": {"concurrency": 2},
    "steps": [
        {"id": "a", "type": "wait", "config": {"seconds": 1}, "policies": {"retries": 2}},
        {
            "id": "b",
            "type": "branch",
            "depends_on": ["a"],
            "config": {"cases": [{"when": "true", "then": ["c"]}]},
        },
        {"id": "c", "type": "http", "depends_on": ["b"], "config": {"url": "https://e.com"}},
        {"id": "d", "type": "script", "depends_on": ["a"], "config": {"source": "echo"}},
    ],
}
PATHS = [
    [],
    ["slug"],
    ["name"],
    ["input_schema"],
    ["policies"],
    ["policies", "concurrency"],
    ["steps"],
    ["steps", 0],
    ["steps", 0, "config"],
    ["steps", 0, "config", "seconds"],
    ["steps", 0, "policies"],
    ["steps", 0, "policies", "retries"],
    ["steps", 1, "config"],
    ["steps", 1, "config", "cases"],
    ["steps", 1, "config", "cases", 0],
    ["steps", 1, "depends_on"],
    ["steps", 2, "config", "headers"],
    ["steps", 2, "config", "url"],
    ["steps", 3, "config", "env"],
    ["steps", 3, "config", "credentials"],
    ["steps", 2, "when"],
    ["output"],
]


def compiles_or_explains(raw):
    try:
        result = compile_definition(raw)
    except DefinitionError as exc:
        assert exc.errors and all({"step", "field", "message"} <= set(e) for e in exc.errors)
    else:
        assert isinstance(result, dict)


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_it_only_raises_definition_errors_for_any_json(value):
    compiles_or_explains(value)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(PATHS), JSON)
def test_it_only_raises_definition_errors_when_any_part_is_replaced(path, value):
    raw = copy.deepcopy(BASE)
    if not path:
        raw = value
    else:
        target = raw
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    compiles_or_explains(raw)
