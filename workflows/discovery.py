"""Find the workflows declared in code: every installed app's `flows.py`, as Django finds
`admin.py`."""

from __future__ import annotations

from django.utils.module_loading import autodiscover_modules

from workflows.flows import Workflow, code_workflows


def discover_flows() -> dict[str, Workflow]:
    """Import each installed app's `flows` module and return the code workflows by slug."""
    autodiscover_modules("flows")
    return code_workflows()
