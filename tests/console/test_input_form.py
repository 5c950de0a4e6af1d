from django import forms

from tests.console.conftest import PIPELINE
from workflows.input_form import InputForm

SCHEMA = PIPELINE["input_schema"]


def test_it_builds_typed_fields_with_defaults_required_and_enums():
    form = InputForm(SCHEMA)
    assert isinstance(form.fields["count"], forms.IntegerField)
    assert form.fields["count"].initial == 5
    assert form.fields["count"].min_value == 1
    assert form.fields["label"].required is True
    assert form.fields["count"].required is False
    assert [c[1] for c in form.fields["mode"].choices] == ["—", "fast", "safe"]
    assert form.fields["mode"].initial == '"safe"'
    assert isinstance(form.fields["dry_run"], forms.BooleanField)


def test_it_turns_the_posted_form_into_typed_input():
    form = InputForm(
        SCHEMA, data={"count": "7", "label": "nightly", "mode": '"fast"', "dry_run": "on"}
    )
    assert form.is_valid(), form.errors
    assert form.input_value() == {"count": 7, "label": "nightly", "mode": "fast", "dry_run": True}


def test_it_omits_empty_optional_fields_so_schema_defaults_apply():
    form = InputForm(SCHEMA, data={"count": "", "label": "x", "mode": ""})
    assert form.is_valid(), form.errors
    assert form.input_value() == {"label": "x", "dry_run": False}


def test_it_reports_wrong_types_missing_fields_and_unknown_choices_on_the_fields():
    form = InputForm(SCHEMA, data={"count": "many", "mode": '"reckless"'})
    assert not form.is_valid()
    assert set(form.errors) == {"count", "label", "mode"}


def test_it_keeps_enum_values_of_other_types_distinct():
    form = InputForm({"properties": {"level": {"enum": [1, "1", True]}}}, data={"level": "1"})
    assert form.is_valid(), form.errors
    assert form.input_value() == {"level": 1}


def test_it_accepts_objects_and_arrays_as_json():
    schema = {"properties": {"tags": {"type": "array"}}}
    form = InputForm(schema, data={"tags": '["a", "b"]'})
    assert form.is_valid(), form.errors
    assert form.input_value() == {"tags": ["a", "b"]}
    assert not InputForm(schema, data={"tags": "[oops"}).is_valid()


def test_it_falls_back_to_a_json_object_when_the_schema_has_no_properties():
    form = InputForm({"type": "object"}, data={"input": '{"a": 1}'})
    assert form.is_valid()
    assert form.input_value() == {"a": 1}
    for bad in ("[1]", "{nope", '"text"'):
        form = InputForm(None, data={"input": bad})
        assert not form.is_valid()
        assert "input" in form.errors


def test_it_puts_service_errors_on_the_named_fields():
    form = InputForm(SCHEMA, data={"label": "x"})
    assert form.is_valid()
    form.add_input_errors(
        [
            {"field": "input['count']", "message": "must be at least 1"},
            {"field": "label", "message": "too short"},
            {"field": "input", "message": "something overall"},
        ]
    )
    assert form.errors["count"] == ["must be at least 1"]
    assert form.errors["label"] == ["too short"]
    assert form.non_field_errors() == ["something overall"]
