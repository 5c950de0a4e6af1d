"""The console's form for a workflow written as JSON: validated exactly like code workflows."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from workflows.definition import DefinitionError, compile_definition, format_error
from workflows.models import Workflow

EXAMPLE = """{
  "input_schema": {"type": "object", "properties": {"seconds": {"type": "integer"}}},
  "steps": [
    {"id": "pause", "type": "wait", "config": {"seconds": "{{ input.seconds }}"}}
  ]
}"""


class DefinitionField(forms.JSONField):
    """JSON shown indented, so operators edit a readable document."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value  # what the operator typed, kept for them to fix
        return json.dumps(value, indent=2, ensure_ascii=False)


class WorkflowForm(forms.ModelForm):
    """Slug, enabled and the JSON definition; name and description come from the definition."""

    class Meta:
        model = Workflow
        fields = ["slug", "enabled", "definition"]
        field_classes = {"definition": DefinitionField}
        widgets = {
            "definition": forms.Textarea(
                attrs={
                    "rows": 30,
                    "cols": 100,
                    "spellcheck": "false",
                    "class": "vLargeTextField",
                    "style": "font-family: monospace",
                    "placeholder": EXAMPLE,
                }
            )
        }
        help_texts = {
            "definition": "The workflow as JSON (docs/architecture.md). Saving validates it and "
            "stores a new version when it changed; runs keep the version they started with.",
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        raw = cleaned.get("definition")
        slug = cleaned.get("slug") or (self.instance.slug if self.instance.pk else None)
        if "definition" not in self.fields or self.has_error("definition") or not slug:
            return cleaned
        if isinstance(raw, dict):
            raw = {"slug": slug, **raw}
        try:
            canonical = compile_definition(raw)
        except DefinitionError as exc:
            self.add_error("definition", [format_error(e) for e in exc.errors])
            return cleaned
        if canonical["slug"] != slug:
            self.add_error("definition", f"slug: must be this workflow's slug {slug!r}")
            return cleaned
        cleaned["definition"] = canonical
        return cleaned
