import pytest
from django.core.management import call_command
from django.urls import reverse

from runs.models import Run

pytestmark = pytest.mark.django_db


def member_of(user, group_name):
    from django.contrib.auth.models import Group

    user.groups.add(Group.objects.get(name=group_name))
    # Permissions are cached per user object: fetch it again.
    return type(user).objects.get(pk=user.pk)


def test_it_creates_the_roles_and_is_safe_to_run_twice(capsys):
    call_command("createroles")
    call_command("createroles")
    out = capsys.readouterr().out
    assert "Viewers (7 permissions)" in out
    assert "Operators" in out and "Credential managers" in out


def test_it_gives_a_viewer_sight_but_no_actions(client, charlie, pipeline_run):
    call_command("createroles")
    viewer = member_of(charlie, "Viewers")
    assert viewer.has_perm("runs.view_run")
    assert not viewer.has_perm("runs.cancel_run")
    assert not viewer.has_perm("workflows.run_workflow")
    assert not viewer.has_perm("credentials.view_credential")
    client.force_login(viewer)
    html = client.get(reverse("admin:runs_run_change", args=[pipeline_run.pk])).content.decode()
    assert "steps done" in html and "cancel-run" not in html


def test_it_lets_an_operator_run_and_cancel(client, charlie, pipeline):
    call_command("createroles")
    operator = member_of(charlie, "Operators")
    client.force_login(operator)
    url = reverse("admin:workflows_workflow_run", args=[pipeline.pk])
    assert client.post(url, {"label": "x"}).status_code == 302
    run = Run.objects.get()
    assert client.post(reverse("admin:runs_run_cancel", args=[run.pk])).status_code == 302
    run.refresh_from_db()
    assert run.status == "cancelled"
