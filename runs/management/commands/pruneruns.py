from django.core.management.base import BaseCommand, CommandError

from runs.retention import prune_runs
from workflows.models import Workflow


class Command(BaseCommand):
    help = (
        "Delete finished runs (with their steps and events) older than RUNS_RETENTION_DAYS or "
        "beyond the newest RUNS_RETENTION_COUNT per workflow; a workflow's policies.retention "
        "overrides either."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be deleted; delete nothing."
        )
        parser.add_argument(
            "--workflow",
            action="append",
            metavar="SLUG",
            help="Prune only this workflow (repeatable). Default: every workflow.",
        )

    def handle(self, *args, dry_run, workflow, **options):
        workflows = None
        if workflow:
            workflows = list(Workflow.objects.filter(slug__in=workflow))
            missing = sorted(set(workflow) - {w.slug for w in workflows})
            if missing:
                raise CommandError(f"No workflow with slug {', '.join(missing)}.")
        return prune_runs(dry_run=dry_run, workflows=workflows).summary(dry_run=dry_run)
