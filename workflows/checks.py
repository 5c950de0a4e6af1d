"""`manage.py check` (and runserver, migrate) warn about invalid workflows in flows.py modules,
so a typo shows up when the developer starts the server, not only in the sync log."""

from __future__ import annotations

from typing import Any

from django.core import checks

from workflows.definition import DefinitionError, format_error


@checks.register()
def check_code_workflows(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from workflows.discovery import discover_flows

    found: list[checks.CheckMessage] = []
    for slug, flow in sorted(discover_flows().items()):
        try:
            flow.compile(check_credentials=False)
        except DefinitionError as exc:
            found += [
                checks.Warning(
                    f"Code workflow {slug!r} is invalid and will not be synced: "
                    f"{format_error(error)}",
                    obj=flow.module,
                    id="workflows.W001",
                )
                for error in exc.errors
            ]
    return found
