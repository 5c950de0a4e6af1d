"""`manage.py runworkflow SLUG [--input JSON] [--wait]`: start a run from the command line."""

from __future__ import annotations

import json
import threading
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from runs import services
from runs.exceptions import InvalidInput, WorkflowUnavailable
from runs.models import Run, RunEvent
from workflows.models import Workflow

POLL_SECONDS = 0.1


class Command(BaseCommand):
    help = "Start a run of a workflow; with --wait, follow it to the end (exit 1 if it fails)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug", help="The workflow's slug.")
        parser.add_argument(
            "--input", default="{}", help="The run input as a JSON object, e.g. '{\"count\": 3}'."
        )
        parser.add_argument(
            "--wait",
            action="store_true",
            help="Follow the run, printing each step as it finishes. At tiers 0 and 1 this "
            "process executes the run itself.",
        )
        parser.add_argument(
            "--here",
            action="store_true",
            help="Execute the run in this process even where workers exist (tier 2+), e.g. to "
            "debug a workflow; implies --wait.",
        )

    def handle(self, *args, **options) -> str:
        run_input = parse_input(options["input"])
        workflow = Workflow.objects.filter(slug=options["slug"]).first()
        if workflow is None:
            raise CommandError(f"No workflow with the slug {options['slug']!r}.")
        try:
            run = services.start_run(
                workflow, input=run_input, trigger=Run.Trigger.MANUAL, submit=not options["here"]
            )
        except (InvalidInput, WorkflowUnavailable) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Run {run.pk} of {workflow.slug} queued.")
        if not (options["wait"] or options["here"]):
            return ""
        run = self.follow(run, here=options["here"])
        if run.status != Run.Status.SUCCEEDED:
            raise CommandError(f"Run {run.pk} {run.status}: {run.error}", returncode=1)
        return f"Run {run.pk} succeeded. Output: {json.dumps(run.output)[:2000]}"

    def follow(self, run: Run, *, here: bool = False) -> Run:
        """Print step endings from the event log until the run is final."""
        from infra.registry import get_mode

        worker = None
        if here or get_mode().executor == "inline":
            # No serving process may be running: execute here (a no-op if one already claimed it).
            worker = threading.Thread(target=_execute_here, args=(run.pk,), daemon=True)
            worker.start()
        last_seq = 0
        while True:
            for event in RunEvent.objects.filter(run=run, seq__gt=last_seq).order_by("seq"):
                last_seq = event.seq
                self.print_event(event)
            run.refresh_from_db()
            if run.is_final and not RunEvent.objects.filter(run=run, seq__gt=last_seq).exists():
                break
            time.sleep(POLL_SECONDS)
        if worker is not None:
            worker.join(5)
        return run

    def print_event(self, event: RunEvent) -> None:
        payload = event.payload or {}
        step = payload.get("step")
        if event.type == "step.succeeded":
            self.stdout.write(f"  {step}: succeeded in {payload.get('duration_ms')} ms")
        elif event.type == "step.failed":
            self.stdout.write(f"  {step}: failed: {payload.get('error')}")
        elif event.type == "step.retrying":
            self.stdout.write(f"  {step}: retrying in {payload.get('delay_seconds')} s")
        elif event.type == "step.skipped":
            self.stdout.write(f"  {step}: skipped ({payload.get('reason')})")
        elif event.type == "step.cancelled":
            self.stdout.write(f"  {step}: cancelled")
        elif event.type.startswith("run.") and event.type != "run.queued":
            self.stdout.write(f"{event.type}")


def parse_input(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"--input is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise CommandError(f"--input must be a JSON object, not {type(value).__name__}.")
    return value


def _execute_here(run_id: int) -> None:
    try:
        services.execute_run(run_id)
    finally:
        connection.close()  # this thread's own session: the command may go on (tests do)
