"""The `{{ ... }}` expressions of step config: a tokenizer and a recursive-descent parser of our own.

Never `eval`, never Python attribute access: an expression can only read the JSON values of its
context (`input`, `steps`, `run`) with `.key` and `[index]`, compare them, combine them with
`and`/`or`/`not`, do arithmetic on numbers and call a few pure functions. Everything that goes
wrong, whatever the text, is an `ExpressionError`.

Grammar (lowest precedence first):

    expr       := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := sum (("=="|"!="|"<"|"<="|">"|">="|"in"|"not" "in") sum)?
    sum        := product (("+"|"-") product)*
    product    := unary (("*"|"/"|"%") unary)*
    unary      := "-" unary | postfix
    postfix    := primary ("." NAME | "[" expr "]")*
    primary    := NUMBER | STRING | true | false | null | NAME | NAME "(" args ")"
                | "(" expr ")" | "[" args "]"

The evaluation context is `{"input": {...}, "steps": {step_id: {"output": ...}}, "run": {...}}`.
Reading a missing key, or anything of `null`, gives `null`, so `default(steps.x.output.n, 0)`
works for a skipped step.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_LENGTH = 500  # characters in one expression
MAX_DEPTH = 20  # nesting of brackets, calls, not and unary minus
MAX_STRING_RESULT = 100_000  # characters a string (or items a list) built by `+` may reach
MAX_TEMPLATE_LENGTH = 100_000  # characters of one config string that holds expressions
ROOT_NAMES = ("input", "steps", "run")

TEMPLATE_RE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


class ExpressionError(ValueError):
    """An expression that cannot be parsed, is refused, or fails to evaluate."""


# --- Functions: pure, on JSON values only. ----------------------------------------------------


def _length(value: Any) -> int:
    if not isinstance(value, str | list | dict):
        raise ExpressionError(f"length() needs a string, list or object, not {_type(value)}")
    return len(value)


def _default(value: Any, fallback: Any) -> Any:
    return fallback if value is None else value


def _lower(value: Any) -> str:
    return _need_str("lower", value).lower()


def _upper(value: Any) -> str:
    return _need_str("upper", value).upper()


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _number(value: Any) -> int | float:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, str) and len(value) <= 50:
        try:
            return int(value)
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                pass
            else:
                if math.isfinite(number):
                    return number
    raise ExpressionError(f"number() cannot convert {_brief(value)}")


def _keys(value: Any) -> list[str]:
    if not isinstance(value, dict):
        raise ExpressionError(f"keys() needs an object, not {_type(value)}")
    return list(value)


def _join(value: Any, separator: Any = ",") -> str:
    if not isinstance(value, list):
        raise ExpressionError(f"join() needs a list, not {_type(value)}")
    return _check_size(_need_str("join", separator).join(_string(item) for item in value))


def _numbers(name: str, value: Any) -> list[int | float]:
    if not isinstance(value, list) or not value:
        raise ExpressionError(f"{name}() needs a non-empty list of numbers")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        raise ExpressionError(f"{name}() needs a list of numbers")
    return value


FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int]] = {
    # name: (function, fewest arguments, most arguments)
    "length": (_length, 1, 1),
    "default": (_default, 2, 2),
    "lower": (_lower, 1, 1),
    "upper": (_upper, 1, 1),
    "string": (_string, 1, 1),
    "number": (_number, 1, 1),
    "keys": (_keys, 1, 1),
    "join": (_join, 1, 2),
    "sum": (lambda v: sum(_numbers("sum", v)), 1, 1),
    "min": (lambda v: min(_numbers("min", v)), 1, 1),
    "max": (lambda v: max(_numbers("max", v)), 1, 1),
}


# --- Tokenizer ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # "num" | "str" | "name" | "op" | "end"
    value: Any
    pos: int


TOKEN_RE = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<num>\d+\.\d+|\d+)
  | (?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|<=|>=|[<>()\[\].,+\-*/%])
    """,
    re.VERBOSE,
)
ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}


def _unquote(literal: str, pos: int) -> str:
    out, i, body = [], 0, literal[1:-1]
    while i < len(body):
        char = body[i]
        if char == "\\":
            nxt = body[i + 1] if i + 1 < len(body) else ""
            if nxt not in ESCAPES:
                raise ExpressionError(f"unknown escape \\{nxt} at position {pos + i + 1}")
            out.append(ESCAPES[nxt])
            i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = TOKEN_RE.match(text, pos)
        if not match:
            raise ExpressionError(f"unexpected character {text[pos]!r} at position {pos}")
        kind = match.lastgroup or ""
        raw = match.group()
        if kind == "num":
            if len(raw) > 30:
                raise ExpressionError(f"number too long at position {pos}")
            tokens.append(Token(kind, float(raw) if "." in raw else int(raw), pos))
        elif kind == "str":
            tokens.append(Token(kind, _unquote(raw, pos), pos))
        elif kind != "space":
            tokens.append(Token(kind, raw, pos))
        pos = match.end()
    tokens.append(Token("end", None, len(text)))
    return tokens


# --- Parser: builds a tree of tuples ----------------------------------------------------------
# ("lit", value) ("name", n) ("get", obj, key_node) ("call", fn, [args]) ("list", [items])
# ("not", x) ("neg", x) ("and", a, b) ("or", a, b) ("bin", op, a, b)

COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
KEYWORDS = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def accept(self, kind: str, value: Any = None) -> bool:
        token = self.peek()
        if token.kind == kind and (value is None or token.value == value):
            self.i += 1
            return True
        return False

    def expect(self, kind: str, value: str) -> None:
        if not self.accept(kind, value):
            token = self.peek()
            found = "end of expression" if token.kind == "end" else repr(token.value)
            raise ExpressionError(f"expected {value!r} at position {token.pos}, found {found}")

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(f"expression nested deeper than {MAX_DEPTH} levels")

    def parse(self) -> tuple:
        node = self.expr()
        token = self.peek()
        if token.kind != "end":
            raise ExpressionError(f"unexpected {token.value!r} at position {token.pos}")
        return node

    def expr(self) -> tuple:
        node = self.conjunction()
        while self.accept("name", "or"):
            node = ("or", node, self.conjunction())
        return node

    def conjunction(self) -> tuple:
        node = self.negation()
        while self.accept("name", "and"):
            node = ("and", node, self.negation())
        return node

    def negation(self) -> tuple:
        if self.accept("name", "not"):
            self.nest()
            node = ("not", self.negation())
            self.depth -= 1
            return node
        return self.comparison()

    def comparison(self) -> tuple:
        node = self.sum()
        token = self.peek()
        if token.kind == "op" and token.value in COMPARISONS:
            self.take()
            return ("bin", token.value, node, self.sum())
        if self.accept("name", "in"):
            return ("bin", "in", node, self.sum())
        if token.kind == "name" and token.value == "not":
            nxt = self.tokens[self.i + 1]
            if nxt.kind == "name" and nxt.value == "in":
                self.i += 2
                return ("not", ("bin", "in", node, self.sum()))
        return node

    def sum(self) -> tuple:
        node = self.product()
        while self.peek().kind == "op" and self.peek().value in ("+", "-"):
            node = ("bin", self.take().value, node, self.product())
        return node

    def product(self) -> tuple:
        node = self.unary()
        while self.peek().kind == "op" and self.peek().value in ("*", "/", "%"):
            node = ("bin", self.take().value, node, self.unary())
        return node

    def unary(self) -> tuple:
        if self.accept("op", "-"):
            self.nest()
            node = ("neg", self.unary())
            self.depth -= 1
            return node
        return self.postfix()

    def postfix(self) -> tuple:
        node = self.primary()
        while True:
            if self.accept("op", "."):
                token = self.take()
                if token.kind != "name":
                    raise ExpressionError(f"expected a key after '.' at position {token.pos}")
                _refuse_dunder(token.value)
                node = ("get", node, ("lit", token.value))
            elif self.accept("op", "["):
                self.nest()
                key = self.expr()
                self.depth -= 1
                self.expect("op", "]")
                if key[0] == "lit" and isinstance(key[1], str):
                    _refuse_dunder(key[1])
                node = ("get", node, key)
            else:
                return node

    def primary(self) -> tuple:
        token = self.take()
        if token.kind in ("num", "str"):
            return ("lit", token.value)
        if token.kind == "name":
            return self.name(token)
        if token.kind == "op" and token.value == "(":
            self.nest()
            node = self.expr()
            self.depth -= 1
            self.expect("op", ")")
            return node
        if token.kind == "op" and token.value == "[":
            return ("list", self.items("]"))
        found = "end of expression" if token.kind == "end" else repr(token.value)
        raise ExpressionError(f"unexpected {found} at position {token.pos}")

    def name(self, token: Token) -> tuple:
        name = token.value
        _refuse_dunder(name)
        if name in KEYWORDS:
            return ("lit", KEYWORDS[name])
        if self.accept("op", "("):
            if name not in FUNCTIONS:
                raise ExpressionError(f"unknown function {name}()")
            args = self.items(")")
            _, least, most = FUNCTIONS[name]
            if not least <= len(args) <= most:
                raise ExpressionError(f"{name}() takes {least}-{most} arguments, got {len(args)}")
            return ("call", name, args)
        if name not in ROOT_NAMES:
            raise ExpressionError(
                f"unknown name {name!r}: start with {', '.join(ROOT_NAMES)} or a function"
            )
        return ("name", name)

    def items(self, closing: str) -> list[tuple]:
        self.nest()
        items: list[tuple] = []
        if not self.accept("op", closing):
            items.append(self.expr())
            while self.accept("op", ","):
                items.append(self.expr())
            self.expect("op", closing)
        self.depth -= 1
        return items


def _refuse_dunder(name: str) -> None:
    if name.startswith("_"):
        raise ExpressionError(f"names starting with '_' are not allowed ({name!r})")


def parse(text: str) -> tuple:
    """Parse one expression (without braces) into a tree; `ExpressionError` when invalid."""
    if not isinstance(text, str):
        raise ExpressionError("an expression must be a string")
    return _parse_cached(text)


# The same step config is rendered on every run: parse each expression text once per process.
# Trees are never modified after parsing, so sharing them is safe.
@functools.lru_cache(maxsize=4096)
def _parse_cached(text: str) -> tuple:
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_LENGTH} characters")
    if not text.strip():
        raise ExpressionError("empty expression")
    tree = _Parser(text).parse()
    _check_static(tree)
    return tree


def _check_static(node: tuple) -> None:
    """Refuse what is hostile or unverifiable without running it: string or list repetition,
    and `steps` not followed by a literal step id (references must be checkable)."""
    kind = node[0]
    if kind == "name" and node[1] == "steps":
        raise ExpressionError("steps must be followed by a step id, e.g. steps.fetch.output")
    if kind == "get" and node[1] == ("name", "steps"):
        if _steps_key(node) is None:
            raise ExpressionError("steps must be followed by a step id, e.g. steps.fetch.output")
        return
    if kind == "bin" and node[1] == "*" and any(_is_sequence_literal(n) for n in node[2:]):
        raise ExpressionError("repeating strings or lists with '*' is not allowed")
    for child in node[1:]:
        if isinstance(child, tuple):
            _check_static(child)
        elif isinstance(child, list):
            for item in child:
                _check_static(item)


def _is_sequence_literal(node: tuple) -> bool:
    return node[0] == "list" or (node[0] == "lit" and isinstance(node[1], str))


def _steps_key(node: tuple) -> str | None:
    """The step id of a `steps.X` node, or None."""
    if node[0] == "get" and node[1] == ("name", "steps"):
        key = node[2]
        if key[0] == "lit" and isinstance(key[1], str):
            return key[1]
    return None


# --- Evaluation --------------------------------------------------------------------------------


def _type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _need_str(fn: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ExpressionError(f"{fn}() needs a string, not {_type(value)}")
    return value


def _check_size(value: Any) -> Any:
    if isinstance(value, str | list) and len(value) > MAX_STRING_RESULT:
        raise ExpressionError(f"result longer than {MAX_STRING_RESULT} characters or items")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _get(obj: Any, key: Any) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        if not isinstance(key, str):
            raise ExpressionError(f"object keys are strings, not {_type(key)}")
        return obj.get(key)
    if isinstance(obj, list):
        if not isinstance(key, int) or isinstance(key, bool):
            raise ExpressionError(f"list indexes are integers, not {_type(key)}")
        return obj[key] if -len(obj) <= key < len(obj) else None
    raise ExpressionError(f"cannot read {_brief(key)} of a {_type(obj)}")


def _arithmetic(op: str, left: Any, right: Any) -> Any:
    if op == "+" and isinstance(left, str) and isinstance(right, str):
        return _check_size(left + right)
    if op == "+" and isinstance(left, list) and isinstance(right, list):
        return _check_size(left + right)
    if not (_is_number(left) and _is_number(right)):
        raise ExpressionError(f"cannot apply {op!r} to {_type(left)} and {_type(right)}")
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        result = left * right
        if abs(result) > 1e300:
            raise ExpressionError("number too large")
        return result
    if right == 0:
        raise ExpressionError("division by zero")
    return left / right if op == "/" else left % right


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    if op == "in":
        if isinstance(right, str) and isinstance(left, str):
            return left in right
        if isinstance(right, list):
            return left in right
        if isinstance(right, dict):
            return isinstance(left, str) and left in right
        raise ExpressionError(
            f"'in' needs a string, list or object on the right, not {_type(right)}"
        )
    comparable = (_is_number(left) and _is_number(right)) or (
        isinstance(left, str) and isinstance(right, str)
    )
    if not comparable:
        raise ExpressionError(f"cannot compare {_type(left)} {op} {_type(right)}")
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]


def _eval(node: tuple, context: dict[str, Any]) -> Any:
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "name":
        return context.get(node[1])
    if kind == "get":
        return _get(_eval(node[1], context), _eval(node[2], context))
    if kind == "list":
        return [_eval(item, context) for item in node[1]]
    if kind == "call":
        function = FUNCTIONS[node[1]][0]
        return function(*[_eval(arg, context) for arg in node[2]])
    if kind == "not":
        return not _eval(node[1], context)
    if kind == "neg":
        value = _eval(node[1], context)
        if not _is_number(value):
            raise ExpressionError(f"cannot negate a {_type(value)}")
        return -value
    if kind == "and":
        left = _eval(node[1], context)
        return _eval(node[2], context) if left else left
    if kind == "or":
        left = _eval(node[1], context)
        return left if left else _eval(node[2], context)
    _, op, left_node, right_node = node
    left, right = _eval(left_node, context), _eval(right_node, context)
    if op in ("+", "-", "*", "/", "%"):
        return _arithmetic(op, left, right)
    return _compare(op, left, right)


def evaluate(expr: str, context: dict[str, Any]) -> Any:
    """Evaluate one expression (braces optional) against `context`; `ExpressionError` if it fails."""
    text = expr.strip()
    if is_single_expression(text):
        text = text[2:-2]
    tree = parse(text)
    try:
        return _eval(tree, context)
    except ExpressionError:
        raise
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise ExpressionError(f"cannot evaluate: {exc}") from exc


# --- Templates: strings inside step config -----------------------------------------------------


def _expressions(text: str) -> list[str]:
    """The expressions inside `{{ }}` in a string; `ExpressionError` for an unbalanced brace."""
    if len(text) > MAX_TEMPLATE_LENGTH:
        raise ExpressionError(f"text longer than {MAX_TEMPLATE_LENGTH} characters")
    found = TEMPLATE_RE.findall(text)
    if "{{" in TEMPLATE_RE.sub("", text):
        raise ExpressionError("'{{' without a matching '}}'")
    return found


def validate_template(text: str) -> list[str]:
    """Error messages for every invalid expression in `text` (empty when all are fine)."""
    try:
        found = _expressions(text)
    except ExpressionError as exc:
        return [str(exc)]
    errors = []
    for expr in found:
        try:
            parse(expr)
        except ExpressionError as exc:
            errors.append(f"{{{{ {expr.strip()[:60]} }}}}: {exc}")
    return errors


def is_single_expression(text: str) -> bool:
    stripped = text.strip()
    return bool(TEMPLATE_RE.fullmatch(stripped)) and stripped.count("{{") == 1


def _to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise ExpressionError(f"cannot write the value as text: {exc}") from exc


def render_string(text: str, context: dict[str, Any]) -> Any:
    if "{{" not in text:
        return text
    if is_single_expression(text):
        return evaluate(text.strip()[2:-2], context)
    _expressions(text)  # raises on an unbalanced brace
    rendered = TEMPLATE_RE.sub(lambda m: _to_text(evaluate(m.group(1), context)), text)
    return _check_size(rendered)


def render(value: Any, context: dict[str, Any]) -> Any:
    """Render every string inside dicts and lists; a string that is exactly one `{{ expr }}`
    becomes the expression's value with its JSON type."""
    if isinstance(value, str):
        return render_string(value, context)
    if isinstance(value, dict):
        return {key: render(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, context) for item in value]
    return value


def _tree_references(node: tuple, found: set[str]) -> None:
    step = _steps_key(node)
    if step is not None:
        found.add(step)
    for child in node[1:]:
        if isinstance(child, tuple):
            _tree_references(child, found)
        elif isinstance(child, list):
            for item in child:
                _tree_references(item, found)


def references(value: Any) -> set[str]:
    """The step ids that the expressions in `value` (a string, dict or list) refer to.
    Invalid expressions are ignored here: `validate_template` reports them."""
    found: set[str] = set()
    if isinstance(value, str):
        try:
            for expr in _expressions(value):
                _tree_references(parse(expr), found)
        except ExpressionError:
            pass
    elif isinstance(value, dict):
        for item in value.values():
            found |= references(item)
    elif isinstance(value, list):
        for item in value:
            found |= references(item)
    return found


def expression_references(expr: str) -> set[str]:
    """The step ids a bare expression (no braces) refers to."""
    found: set[str] = set()
    _tree_references(parse(expr), found)
    return found
