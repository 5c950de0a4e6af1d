import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflows.expressions import (
    ExpressionError,
    evaluate,
    parse,
    references,
    render,
    validate_template,
)

CONTEXT = {
    "input": {"count": 5, "name": "ada", "tags": ["a", "b"], "flag": False},
    "steps": {"fetch": {"output": {"items": [{"id": 1}, {"id": 2}], "total": 30}}},
    "run": {"id": 42},
}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("input.count", 5),
        ("input['name']", "ada"),
        ("steps.fetch.output.items[1].id", 2),
        ("steps.fetch.output.items[-1].id", 2),
        ("steps.fetch.output.items[9]", None),
        ("input.missing.deeper", None),
        ("run.id", 42),
        ("input.count > 3 and not input.flag", True),
        ("input.count >= 6 or input.name == 'ada'", True),
        ("input.flag or 'fallback'", "fallback"),
        ("'b' in input.tags", True),
        ("'z' not in input.tags", True),
        ("length(steps.fetch.output.items)", 2),
        ("default(steps.skipped.output.n, 7)", 7),
        ("upper(input.name) + '!'", "ADA!"),
        ("(input.count + 1) * 2 - 10 / 4", 9.5),
        ("input.count % 2", 1),
        ("-input.count", -5),
        ("[1, 2] + [3]", [1, 2, 3]),
        ("sum([1, 2, 3.5])", 6.5),
        ("join(input.tags, '-')", "a-b"),
        ("number('12') + 1", 13),
        ("string(input.tags)", '["a","b"]'),
        ("keys(steps.fetch.output)", ["items", "total"]),
        ('"quote \\" inside"', 'quote " inside'),
        ("true != null", True),
    ],
)
def test_it_evaluates_valid_expressions(expr, expected):
    assert evaluate(expr, CONTEXT) == expected
    assert validate_template("{{ " + expr + " }}") == []


def test_it_renders_a_whole_expression_with_its_json_type_and_interpolates_the_rest():
    config = {
        "n": "{{ input.count }}",
        "items": ["{{ steps.fetch.output.items[0] }}", "plain"],
        "text": "Hi {{ input.name }}, {{ input.tags }} {{ steps.x.output }}!",
        "number": 3,
    }
    assert render(config, CONTEXT) == {
        "n": 5,
        "items": [{"id": 1}, "plain"],
        "text": 'Hi ada, ["a","b"] !',
        "number": 3,
    }


def test_it_lists_the_steps_a_value_refers_to():
    value = {"a": "{{ steps.fetch.output }}", "b": ["{{ steps['other'].output.x + 1 }}"]}
    assert references(value) == {"fetch", "other"}
    assert references("no expressions") == set()


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("", "empty"),
        ("input.", "expected a key"),
        ("1 +", "unexpected end"),
        ("input.count ==", "unexpected end"),
        ("(1", "expected '\\)'"),
        ("input.count input", "unexpected 'input'"),
        ("'unterminated", "unexpected character"),
        ("1 < 2 < 3", "unexpected '<'"),
        ("input @ 2", "unexpected character '@'"),
        ("length()", "takes 1-1 arguments"),
        ("'\\q'", "unknown escape"),
    ],
)
def test_it_rejects_invalid_expressions(expr, message):
    with pytest.raises(ExpressionError, match=message):
        parse(expr)
    assert validate_template("{{ " + expr + " }}")


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("__import__('os').system('id')", "names starting with '_'"),
        ("input.__class__.__mro__", "names starting with '_'"),
        ("input['__class__']", "names starting with '_'"),
        ("eval('1')", "unknown function eval"),
        ("open('/etc/passwd')", "unknown function open"),
        ("input.count.bit_length()", "unexpected '\\('"),
        ("os.system", "unknown name 'os'"),
        ("'a' * 100000000", "repeating strings"),
        ("[0] * 100000000", "repeating strings or lists"),
        ("x" * 501, "longer than 500"),
        ("(" * 25 + "1" + ")" * 25, "nested deeper than 20"),
        ("not " * 25 + "true", "nested deeper than 20"),
        ("-" * 25 + "1", "nested deeper than 20"),
        ("steps[input.name].output", "steps must be followed by a step id"),
        ("length(steps)", "steps must be followed by a step id"),
        ("lambda x", "unknown name 'lambda'"),
    ],
)
def test_it_rejects_hostile_expressions_at_validation(expr, message):
    with pytest.raises(ExpressionError, match=message):
        parse(expr)


def test_it_rejects_unbalanced_braces_in_templates():
    assert validate_template("{{ input.count") == ["'{{' without a matching '}}'"]
    assert validate_template("a {{ input.count }} b {{ }}") == ["{{  }}: empty expression"]
    assert validate_template("no expressions at all") == []


@pytest.mark.parametrize(
    "expr",
    [
        "input.name * 3",  # repetition through a value, not a literal
        "input.name < 3",
        "input.tags.first",
        "input.tags['a']",
        "1 / 0",
        "-input.name",
        "length(5)",
        "number('abc')",
        "99999999999999999999 * 99999999999999999999 * 99999999999999999999"
        " * 99999999999999999999 * 99999999999999999999 * 99999999999999999999"
        " * 99999999999999999999 * 99999999999999999999 * 99999999999999999999"
        " * 99999999999999999999 * 99999999999999999999 * 99999999999999999999"
        " * 99999999999999999999 * 99999999999999999999 * 99999999999999999999"
        " * 99999999999999999999",
    ],
)
def test_it_fails_wrong_types_at_run_time_with_an_expression_error(expr):
    with pytest.raises(ExpressionError):
        evaluate(expr, CONTEXT)


def test_it_caps_strings_built_from_run_time_values():
    context = {"input": {"s": "x" * 60_000}}
    with pytest.raises(ExpressionError, match="result longer"):
        evaluate("input.s + input.s", context)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=120))
def test_it_never_raises_anything_but_expression_error_on_random_text(text):
    with contextlib.suppress(ExpressionError):
        evaluate(text, CONTEXT)
    validate_template(text)
    validate_template("{{" + text + "}}")


TOKENS = st.sampled_from(
    [
        "input",
        "steps",
        "run",
        ".",
        "[",
        "]",
        "(",
        ")",
        ",",
        "fetch",
        "output",
        "count",
        "not",
        "and",
        "or",
        "in",
        "==",
        "<",
        "+",
        "-",
        "*",
        "/",
        "%",
        "1",
        "0",
        "'a'",
        "length",
        "default",
        "true",
        "null",
        "__class__",
        "_x",
        " ",
    ]
)


@settings(max_examples=600, deadline=None)
@given(st.lists(TOKENS, max_size=40))
def test_it_never_raises_anything_but_expression_error_on_token_soup(parts):
    text = " ".join(parts)
    with contextlib.suppress(ExpressionError):
        evaluate(text, CONTEXT)
    with contextlib.suppress(ExpressionError):
        render({"x": "{{ " + text + " }}"}, CONTEXT)


def test_it_writes_a_literal_double_brace_through_an_expression():
    source = 'print(f"{{ "{{" }}x}}")'
    assert validate_template(source) == []
    assert render(source, CONTEXT) == 'print(f"{{x}}")'
