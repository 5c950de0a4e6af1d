"""Workflow definitions into the database: immutable versions, and code workflows synced at boot."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from workflows.definition import DefinitionError, compile_definition, content_hash
from workflows.discovery import discover_flows
from workflows.models import Workflow, WorkflowVersion

logger = logging.getLogger("workflows")


def save_definition(workflow: Workflow, raw: Any) -> WorkflowVersion:
    """Validate `raw`, store it as a version unless an identical one exists, and make that
    version the workflow's current one. Raises `DefinitionError` and changes nothing when
    `raw` is invalid. `workflow` must be saved already."""
    if isinstance(raw, dict):
        raw = {"slug": workflow.slug, **raw}
    canonical = compile_definition(raw)
    if canonical["slug"] != workflow.slug:
        message = f"must be this workflow's slug {workflow.slug!r}"
        raise DefinitionError([{"step": None, "field": "slug", "message": message}])
    digest = content_hash(canonical)
    for attempt in range(3):
        try:
            version = _store_version(workflow, canonical, digest)
            break
        except IntegrityError:
            # Another process stored the same hash or took the number first: look again.
            if attempt == 2:
                raise
    workflow.current_version = version
    workflow.definition = canonical
    workflow.name = canonical["name"][:200]
    workflow.description = canonical["description"]
    return version


def _store_version(workflow: Workflow, canonical: dict, digest: str) -> WorkflowVersion:
    with transaction.atomic():
        # Serialises numbering between writers (SQLite's IMMEDIATE transactions do the same).
        Workflow.objects.select_for_update().filter(pk=workflow.pk).first()
        version = WorkflowVersion.objects.filter(workflow=workflow, content_hash=digest).first()
        if version is None:
            last = WorkflowVersion.objects.filter(workflow=workflow).aggregate(n=Max("number"))
            version = WorkflowVersion.objects.create(
                workflow=workflow,
                number=(last["n"] or 0) + 1,
                content_hash=digest,
                definition=canonical,
            )
        Workflow.objects.filter(pk=workflow.pk).update(
            current_version=version,
            definition=canonical,
            name=canonical["name"][:200],
            description=canonical["description"],
            updated_at=timezone.now(),
        )
    return version


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        parts = [
            f"{len(self.created)} created",
            f"{len(self.updated)} updated",
            f"{len(self.unchanged)} unchanged",
            f"{len(self.retired)} retired",
        ]
        if self.failed:
            parts.append(f"{len(self.failed)} failed ({', '.join(sorted(self.failed))})")
        return "code workflows: " + ", ".join(parts)


def sync_code_workflows() -> SyncReport:
    """Create or update a workflow for each one declared in a flows.py module, and mark code
    workflows whose declaration was removed as retired. Safe to run from several processes."""
    report = SyncReport()
    flows = discover_flows()
    for slug, flow in sorted(flows.items()):
        try:
            flow.compile()  # before touching the database: an invalid flow creates nothing
            _sync_one(slug, flow.to_definition(), report)
        except DefinitionError as exc:
            report.failed[slug] = str(exc)
            logger.error("Code workflow %s is invalid and was not synced: %s", slug, exc)
    gone = Workflow.objects.filter(source=Workflow.Source.CODE, retired=False).exclude(
        slug__in=list(flows)
    )
    report.retired = sorted(gone.values_list("slug", flat=True))
    gone.update(retired=True, updated_at=timezone.now())
    logger.info(report.summary())
    return report


def _sync_one(slug: str, raw: dict[str, Any], report: SyncReport) -> None:
    workflow, created = Workflow.objects.get_or_create(
        slug=slug, defaults={"source": Workflow.Source.CODE, "name": raw.get("name") or slug}
    )
    if workflow.source != Workflow.Source.CODE:
        report.failed[slug] = "a workflow written in the console already uses this slug"
        logger.error("Code workflow %s not synced: %s", slug, report.failed[slug])
        return
    before = workflow.current_version_id
    version = save_definition(workflow, raw)
    if workflow.retired:
        Workflow.objects.filter(pk=workflow.pk).update(retired=False)
    if created:
        report.created.append(slug)
    elif version.pk != before:
        report.updated.append(slug)
    else:
        report.unchanged.append(slug)
