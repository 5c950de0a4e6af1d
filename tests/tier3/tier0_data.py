"""Make a tier 0 installation with data, as an operator would have before promoting.

Run in a subprocess with APPSTRATE_DATA_DIR set and no DATABASE_URL:
`python -m tests.tier3.tier0_data`. Prints the ids the test checks, as JSON.
"""

import json
import os
from datetime import UTC, datetime

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "appstrate.settings")
django.setup()

from django.contrib.auth.models import Group, Permission, User  # noqa: E402
from django.core.files.base import ContentFile  # noqa: E402
from django.core.management import call_command  # noqa: E402

from credentials.services import create_credential  # noqa: E402
from infra.registry import get_storage  # noqa: E402
from runs.models import Run, RunEvent, StepRun  # noqa: E402
from workflows.models import Workflow, WorkflowVersion  # noqa: E402

call_command("migrate", verbosity=0)
alice = User.objects.create_superuser("alice", "alice@example.com", "alice-password")
operators = Group.objects.create(name="operators")
operators.permissions.add(Permission.objects.get(codename="cancel_run"))
bob = User.objects.create_user("bob", password="bob-password")
bob.groups.add(operators)

workflow = Workflow.objects.create(slug="demo", name="Demo", definition={"steps": []})
version = WorkflowVersion.objects.create(
    workflow=workflow, number=1, content_hash="a" * 64, definition={"steps": []}
)
workflow.current_version = version  # a cycle: workflow -> version -> workflow
workflow.save()
long_ago = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
parent = Run.objects.create(
    workflow=workflow, version=version, status="succeeded", input={"n": 1}, output={"ok": True}
)
Run.objects.filter(pk=parent.pk).update(created_at=long_ago)
child = Run.objects.create(
    workflow=workflow, version=version, parent_run=parent, triggered_by=alice, status="failed"
)
StepRun.objects.create(run=parent, step_id="a", node_type="python", output={"x": [1, 2]})
for seq in (1, 2, 3):
    RunEvent.objects.create(run=parent, seq=seq, type="run.queued", payload={"seq": seq})
create_credential(name="api", type="bearer_token", secrets={"token": "t0-secret"})
get_storage().save("runs/1/output.json", ContentFile(b'{"big": "output"}'))
get_storage().save("top.txt", ContentFile(b"top"))
print(json.dumps({"parent": parent.pk, "child": child.pk, "alice_password": alice.password}))
