import pytest

from tests.runs.test_scenarios import make_workflow, wait
from workflows.models import Schedule

pytestmark = pytest.mark.django_db

ADD_URL = "/admin/workflows/schedule/add/"


@pytest.fixture
def workflow():
    definition_input = {"type": "object", "properties": {"count": {"type": "integer"}}}
    workflow = make_workflow("reports", [wait(0, "tick")])
    version = workflow.current_version
    version.definition["input_schema"] = definition_input
    version.save(update_fields=["definition"])
    return workflow


def form_data(workflow, **overrides) -> dict:
    data = {
        "workflow": workflow.pk, "name": "", "cron": "0 9 * * *", "timezone": "Europe/Paris",
        "input": "{}", "enabled": "on", "catch_up": "skip", "catch_up_limit": "10",
        "overlap": "skip",
    }  # fmt: skip
    data.update(overrides)
    return data


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cron", "every day at nine"),
        ("cron", "0 0 31 2 *"),
        ("timezone", "Europe/Atlantis"),
        ("input", "{not json"),
        ("input", '{"count": "many"}'),
    ],
)
def test_it_shows_bad_schedule_fields_as_errors_and_saves_nothing(
    alice_client, workflow, field, value
):
    response = alice_client.post(ADD_URL, form_data(workflow, **{field: value}))
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not Schedule.objects.exists()


def test_it_saves_a_valid_schedule_and_shows_its_next_five_fire_times(alice_client, workflow):
    response = alice_client.post(ADD_URL, form_data(workflow, input='{"count": 3}'))
    assert response.status_code == 302
    schedule = Schedule.objects.get()
    assert schedule.next_fire_at is not None and schedule.input == {"count": 3}
    page = alice_client.get(f"/admin/workflows/schedule/{schedule.pk}/change/")
    html = page.content.decode()
    # Five fire times, at 09:00 Paris time.
    assert html.count("09:00:00 CE") == 5


def test_it_enables_and_disables_schedules_from_the_list(alice_client, workflow):
    schedule = Schedule.objects.create(workflow=workflow, cron="0 9 * * *", enabled=False)
    url = "/admin/workflows/schedule/"
    alice_client.post(url, {"action": "enable", "_selected_action": [schedule.pk]})
    schedule.refresh_from_db()
    assert schedule.enabled and schedule.next_fire_at is not None
    alice_client.post(url, {"action": "disable", "_selected_action": [schedule.pk]})
    schedule.refresh_from_db()
    assert not schedule.enabled and schedule.next_fire_at is None
