"""The console's roles as Django groups: what a viewer, an operator and a credential manager may do.

Permissions stay plain Django permissions (view, `workflows.run_workflow`, `runs.cancel_run`,
add/change/delete of credentials); these groups only bundle them so nobody has to tick a
dozen boxes to make a read-only user.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission

VIEW = [
    "workflows.view_workflow",
    "workflows.view_workflowversion",
    "workflows.view_schedule",
    "workflows.view_webhooktrigger",
    "runs.view_run",
    "runs.view_steprun",
    "runs.view_runevent",
]
ROLES: dict[str, list[str]] = {
    "Viewers": VIEW,
    "Operators": [
        *VIEW,
        "workflows.run_workflow",
        "runs.cancel_run",
        "workflows.change_workflow",  # enable and disable
        "workflows.add_schedule",
        "workflows.change_schedule",
        "workflows.delete_schedule",
    ],
    "Credential managers": [
        "credentials.view_credential",
        "credentials.add_credential",
        "credentials.change_credential",
        "credentials.delete_credential",
    ],
}


def create_roles() -> dict[str, int]:
    """Create or update each role's group with exactly its permissions; returns group -> count.

    Permissions that do not exist (an app not installed) are skipped, not invented.
    """
    counts = {}
    for name, perms in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        found = [_permission(p) for p in perms]
        group.permissions.set([p for p in found if p is not None])
        counts[name] = group.permissions.count()
    return counts


def _permission(dotted: str) -> Permission | None:
    app_label, codename = dotted.split(".", 1)
    return Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
