import re

from tests.console.conftest import PIPELINE
from workflows.diagram import render_svg, step_columns


def box_x(svg, step_id):
    match = re.search(rf'data-step="{step_id}"[^>]*transform="translate\((\d+),', svg)
    return int(match.group(1))


def test_it_draws_a_box_per_step_labelled_with_id_and_type():
    svg = render_svg(PIPELINE)
    assert svg.startswith("<svg")
    for step in PIPELINE["steps"]:
        assert f'data-step="{step["id"]}"' in svg
        assert f">{step['type']}</text>" in svg


def test_it_draws_an_arrow_per_dependency():
    svg = render_svg(PIPELINE)
    edges = set(re.findall(r'data-from="(\w+)" data-to="(\w+)"', svg))
    assert edges == {
        ("fetch", "double"),
        ("fetch", "square"),
        ("double", "publish"),
        ("square", "publish"),
    }


def test_it_layers_steps_by_longest_path():
    steps = [
        {"id": "a", "type": "python"},
        {"id": "b", "type": "python", "depends_on": ["a"]},
        {"id": "c", "type": "python", "depends_on": ["b"]},
        # d depends on a and c: its longest path puts it after c, not next to b.
        {"id": "d", "type": "python", "depends_on": ["a", "c"]},
    ]
    assert step_columns(steps) == {"a": 0, "b": 1, "c": 2, "d": 3}
    svg = render_svg({"steps": steps})
    assert box_x(svg, "a") < box_x(svg, "b") < box_x(svg, "c") < box_x(svg, "d")


def test_it_shows_retry_and_timeout_policies_as_badges():
    svg = render_svg(PIPELINE)
    fetch = svg.split('data-step="fetch"')[1].split('</g><g class="node"')[0]
    assert "3 tries" in fetch
    assert "timeout 30s" in fetch
    double = svg.split('data-step="double"')[1].split('</g><g class="node"')[0]
    assert "tries" not in double


def test_it_colours_steps_by_status_and_marks_the_rest_pending():
    svg = render_svg(PIPELINE, {"fetch": "succeeded", "double": "running"})
    assert 'data-step="fetch" data-status="succeeded"' in svg
    assert 'data-step="double" data-status="running"' in svg
    assert 'data-step="publish" data-status="pending"' in svg
    # Without statuses (the workflow page) no step claims a status.
    assert "data-status" not in render_svg(PIPELINE).split("</style>")[1]


def test_it_escapes_hostile_step_ids_and_types():
    svg = render_svg({"steps": [{"id": '<script>x</script>"', "type": "<b>"}]})
    assert "<script>" not in svg
    assert "<b>" not in svg
    assert "&lt;script&gt;" in svg


def test_it_survives_cycles_and_unknown_dependencies():
    steps = [
        {"id": "a", "type": "python", "depends_on": ["b", "ghost"]},
        {"id": "b", "type": "python", "depends_on": ["a"]},
    ]
    svg = render_svg({"steps": steps})
    assert 'data-step="a"' in svg and 'data-step="b"' in svg


def test_it_says_so_when_there_are_no_steps():
    assert "no steps" in render_svg({"steps": []})
