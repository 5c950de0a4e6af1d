"""A Django form built from a workflow's input JSON Schema, for the console's run-now page.

Each top-level property becomes a field of the matching type (enums become choices, defaults
become initial values, `required` is honoured). The schema itself stays the judge: the run
service validates the assembled input, and its errors are put back on the fields they name.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django import forms

SCALARS = {"string", "integer", "number", "boolean"}


class InputForm(forms.Form):
    """Fields from `schema`; `input_value()` gives the run input after `is_valid()`."""

    def __init__(self, schema: dict[str, Any] | None, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.schema = schema if isinstance(schema, dict) else {}
        properties = self.schema.get("properties")
        self.free_form = not isinstance(properties, dict) or not properties
        if self.free_form:
            self.fields["input"] = forms.CharField(
                label="Input (JSON object)",
                required=False,
                initial="{}",
                widget=forms.Textarea(attrs={"rows": 8, "class": "vLargeTextField"}),
                help_text="This workflow declares no input fields; any JSON object is accepted.",
            )
            return
        required = set(self.schema.get("required") or [])
        for name, prop in properties.items():
            if isinstance(prop, dict):
                self.fields[name] = field_for(prop, name in required)

    def clean_input(self) -> dict[str, Any]:
        raw = self.cleaned_data.get("input") or "{}"
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise forms.ValidationError("The input must be a JSON object, e.g. {}.")
        return value

    def input_value(self) -> dict[str, Any]:
        """The run input: fields left empty are omitted, so schema defaults apply downstream."""
        if self.free_form:
            return self.cleaned_data["input"]
        return {
            name: value
            for name, value in self.cleaned_data.items()
            if value is not None and value != ""
        }

    def add_input_errors(self, errors: list[dict[str, Any]]) -> None:
        """Put the run service's validation errors on the fields they name."""
        for error in errors:
            field = _field_of(error.get("field") or "", self.fields)
            self.add_error(field, str(error.get("message") or "Invalid value."))


def field_for(prop: dict[str, Any], required: bool) -> forms.Field:
    kind = prop.get("type")
    if isinstance(kind, list):
        # ["integer", "null"]: an integer field, where leaving it empty means null/default.
        named = [t for t in kind if t != "null"]
        kind = named[0] if len(named) == 1 else None
        required = required and "null" not in prop["type"]
    common: dict[str, Any] = {
        "required": required,
        "label": prop.get("title"),
        "help_text": prop.get("description", ""),
    }
    if "default" in prop:
        common["initial"] = prop["default"]
    if isinstance(prop.get("enum"), list) and prop["enum"]:
        return _enum_field(prop["enum"], common)
    if kind == "boolean":
        # An unticked box is an answer (false), so the field is never "missing".
        return forms.BooleanField(**{**common, "required": False})
    if kind == "integer":
        return forms.IntegerField(
            min_value=prop.get("minimum"), max_value=prop.get("maximum"), **common
        )
    if kind == "number":
        return forms.FloatField(
            min_value=prop.get("minimum"), max_value=prop.get("maximum"), **common
        )
    if kind == "string":
        return forms.CharField(
            min_length=prop.get("minLength"),
            max_length=prop.get("maxLength"),
            strip=False,
            **common,
        )
    # Objects, arrays and anything else: JSON typed by the operator.
    if "initial" in common:
        common["initial"] = json.dumps(common["initial"])
    return forms.JSONField(widget=forms.Textarea(attrs={"rows": 4}), **common)


def _enum_field(options: list[Any], common: dict[str, Any]) -> forms.Field:
    # Choice values travel as JSON so 1, "1" and true stay distinct.
    choices = [(json.dumps(o), o if isinstance(o, str) else json.dumps(o)) for o in options]
    if not common["required"]:
        choices.insert(0, ("", "—"))
    if "initial" in common:
        common["initial"] = json.dumps(common["initial"])
    return forms.TypedChoiceField(choices=choices, coerce=json.loads, empty_value=None, **common)


def _field_of(path: str, fields: dict[str, forms.Field]) -> str | None:
    """`input['count']`, `input.count`, `$.count` or `count` name the field `count`."""
    if path in fields:
        return path
    names = re.findall(r"[^.\[\]'\"/$]+", path)
    if names and names[0] == "input":
        names = names[1:]
    return names[0] if names and names[0] in fields else None
