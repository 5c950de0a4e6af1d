import logging

from django.apps import AppConfig
from django.db import DatabaseError
from django.db.models.signals import post_migrate

logger = logging.getLogger("workflows")


class WorkflowsConfig(AppConfig):
    name = "workflows"

    def ready(self) -> None:
        from workflows import checks  # noqa: F401 - registers the system check
        from workflows.discovery import discover_flows

        # Like admin.py: every app's flows.py is imported at boot, which also registers the
        # functions its python steps call.
        discover_flows()
        post_migrate.connect(sync_after_migrate, sender=self)


def sync_after_migrate(sender, using: str = "default", **kwargs) -> None:
    """After `migrate`, bring the code workflows into the database."""
    from workflows.services import sync_code_workflows

    if using != "default":
        return
    try:
        sync_code_workflows()
    except DatabaseError as exc:  # e.g. migrating backwards: the tables are not there yet
        logger.warning("Code workflows not synced after migrate: %s", exc)
