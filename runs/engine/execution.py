"""The run loop: steps in dependency order, independent ones concurrently, every result
persisted (with its events, in one transaction) before any step that depends on it starts.

Only this loop's thread touches the database for the run; attempts run on their own threads and
report back through `inbox`. Writes gathered in one turn of the loop are flushed together, so a
chain costs one short transaction per step.
"""

from __future__ import annotations

import logging
import queue
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from django.conf import settings
from django.utils import timezone

from credentials.masking import mask
from runs.engine import policies
from runs.engine.attempts import Attempt, AttemptDone, LogLine, Wake, start_attempt
from runs.engine.claims import final_event, submit_next_queued
from runs.engine.db import create_step_rows
from runs.engine.signals import RunHandle, register, unregister
from runs.engine.writes import ClaimWrite, flush_run_changes
from runs.events import MAX_LOG_CHARS
from runs.models import Run, StepRun
from workflows.expressions import ExpressionError, evaluate, render
from workflows.nodes.base import StepContext, StepError, StepTimeout
from workflows.nodes.registry import get_node_type

logger = logging.getLogger("runs")

S = StepRun.Status
DONE = (S.SUCCEEDED, S.SKIPPED)
# How long a stopping run waits for its in-flight attempts to wind down (scripts get killed).
STOP_GRACE_SECONDS = 2.0
ABANDONED_GRACE_SECONDS = 1.0
# Step outputs up to this size travel in the step.succeeded event for the live console.
EVENT_OUTPUT_MAX_BYTES = 8 * 1024
# A fresh run's first steps, when idempotent, start before the claim is written; the claim is
# written with their results if they end within this window (one transaction fewer per run),
# else when it closes, so the console shows them running a moment later.
LAZY_CLAIM_SECONDS = 0.05


class LostOwnership(Exception):
    """Another executor took the run over (ours stopped heartbeating): write nothing more."""


@dataclass
class Outcome:
    status: str  # a Run.Status, or "lost"
    output: Any = None
    error: str = ""


class RunExecution:
    def __init__(
        self,
        run: Run,
        executor_id: str,
        *,
        fresh: bool = False,
        claim: ClaimWrite | None = None,
    ) -> None:
        self.run = run
        self.run_id = run.pk
        self.executor_id = executor_id
        self.fresh = fresh  # claimed from the queue as a new run: no step rows exist
        # Or the claim is not written yet: the first flush writes it, with the step rows.
        self.claim = claim
        self.lazy_claim_until: float | None = None  # see LAZY_CLAIM_SECONDS
        definition = run.version.definition
        self.definition = definition
        self.specs = {step["id"]: step for step in definition["steps"]}
        self.order = list(self.specs)
        self.deps = {sid: list(spec.get("depends_on") or []) for sid, spec in self.specs.items()}
        self.dependents: dict[str, list[str]] = {sid: [] for sid in self.order}
        for sid, deps in self.deps.items():
            for dep in deps:
                self.dependents[dep].append(sid)
        self.workflow_policies = definition.get("policies") or {}
        self.workflow_slug = getattr(run, "workflow_slug", None) or run.workflow.slug
        self.budget = self.workflow_policies.get("max_step_executions")
        self.step_executions = run.step_executions
        self.deadline = _monotonic_at(run.deadline_at)
        self.secrets: set[str] = set()
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.handle = RunHandle(self.run_id, executor_id, wake=lambda: self.inbox.put(Wake()))
        self.context: dict[str, Any] = {"input": run.input, "steps": {}, "run": {"id": run.pk}}

        self.status: dict[str, str] = {}
        self.attempts: dict[str, int] = {}
        self.logs: dict[str, list[str]] = {}
        self.retry_at: dict[str, float] = {}
        self.in_flight: dict[str, Attempt] = {}
        self.abandoned: dict[tuple[str, int], Attempt] = {}  # timed out, thread still busy
        self.unchosen: set[str] = set()
        self.failure: str | None = None
        self.sizes: dict[str, int] = {}

        self.writes: dict[str, dict[str, Any]] = {}  # per step id: changed fields
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.executions_delta = 0
        self.run_status = Run.Status.RUNNING
        self.ready: deque[str] = deque()  # pending steps whose dependencies are all done
        self.waiting: dict[str, int] = {}  # per step: dependencies not done yet
        self.skips_dirty = True  # a branch chose or a step was skipped: look for more skips
        self.step_concurrency = max(int(settings.STEP_CONCURRENCY), 1)
        self.ended_at = timezone.now()  # when the attempt being recorded ended

    # --- entry point ---------------------------------------------------------------------------

    def execute(self) -> Outcome:
        if self.claim is None:
            register(self.handle)  # else once the claim is written: see _flush
        try:
            try:
                outcome = self._load_steps() or self._loop()
            except LostOwnership:
                for attempt in self.in_flight.values():
                    attempt.ctx.cancel.set()  # started before a claim that lost
                return Outcome("lost")
            return self._finish(outcome)
        finally:
            unregister(self.run_id)

    # --- loading (fresh start or resume after a crash) ------------------------------------------

    def _load_steps(self) -> Outcome | None:
        fields = ("step_id", "status", "attempt", "logs", "output")
        if self.fresh:
            # A run claimed from the queue (not a resume) has no step rows yet: create them all,
            # now or with the claim.
            if self.claim is None:
                create_step_rows(
                    self.run_id, [(sid, self.specs[sid]["type"]) for sid in self.order]
                )
            rows = {sid: (sid, S.PENDING, 0, "", None) for sid in self.order}
        else:
            steps = StepRun.objects.filter(run_id=self.run_id).order_by()
            rows = {r[0]: r for r in steps.values_list(*fields)}
            missing = [(sid, self.specs[sid]["type"]) for sid in self.order if sid not in rows]
            if missing:
                create_step_rows(self.run_id, missing)
                rows = {r[0]: r for r in steps.values_list(*fields)}
        for sid in self.order:
            _sid, status, attempt, logs, output = rows[sid]
            self.attempts[sid] = attempt
            self.logs[sid] = [logs] if logs else []
            self.status[sid] = status
            if status in DONE:
                self.context["steps"][sid] = {"output": output}
                if status == S.SUCCEEDED and self.specs[sid]["type"] == "branch":
                    self._note_branch(sid, output)
        outcome = self._recover_interrupted()
        self._count_waiting()
        return outcome

    def _recover_interrupted(self) -> Outcome | None:
        for sid in self.order:
            status = self.status[sid]
            if status == S.FAILED:
                # The crash came between persisting the failure and finishing the run.
                return Outcome(Run.Status.FAILED, error=f"step {sid!r} failed")
            if status in (S.RETRYING, S.CANCELLED):
                self._set_step(sid, S.RETRYING)
                self.retry_at[sid] = 0.0
            elif status == S.RUNNING:
                if not policies.is_idempotent(self.specs[sid], self._node(sid)):
                    error = f"interrupted during non-idempotent step {sid!r}"
                    self._write_step(sid, status=S.FAILED, error=error, finished_at=timezone.now())
                    self.events.append(("step.failed", {"step": sid, "error": error}))
                    self._flush()
                    return Outcome(Run.Status.FAILED, error=error)
                self._set_step(sid, S.RETRYING)
                self.retry_at[sid] = 0.0
                self.events.append(
                    (
                        "step.retrying",
                        {
                            "step": sid,
                            "attempt": self.attempts[sid],
                            "reason": "interrupted",
                            "delay_seconds": 0,
                        },
                    )
                )
        return None

    # --- the loop ------------------------------------------------------------------------------

    def _loop(self) -> Outcome:
        while True:
            if self.handle.cancel.is_set() or self.run_status != Run.Status.RUNNING:
                return Outcome(Run.Status.CANCELLED)
            now = time.monotonic()
            if now >= self.deadline:
                return Outcome(Run.Status.TIMED_OUT, error="run timed out")
            self._expire_attempts(now)
            to_start = [] if self.failure else self._schedule(now)
            pending = to_start or self.in_flight or self.retry_at or self.ready or self.skips_dirty
            # Nothing pending: the run ends now, its last writes go with its final state. A
            # claim that may wait goes with its first steps' results.
            if pending and not self._claim_may_wait(to_start, now):
                self._flush()
            for node, attempt in to_start:
                attempt.restart_clock()  # the step's time counts from here, after the flush
                start_attempt(node, attempt, self.inbox)
            if self.failure:
                return Outcome(Run.Status.FAILED, error=self.failure)
            if not self.in_flight and not to_start and not self.retry_at:
                if self.ready or self.skips_dirty:
                    continue  # a skip made more steps ready or skippable
                return self._completed()
            self._wait(now)

    def _claim_may_wait(self, to_start: list[tuple[Any, Attempt]], now: float) -> bool:
        """Whether the unwritten claim (and the first steps' start) may wait for those steps'
        results: only for the first steps, all idempotent (a crash meanwhile reruns them,
        which they allow), only while the window is open and nothing else must be written."""
        if self.claim is None or self.failure or self.retry_at:
            return False
        if self.lazy_claim_until is None:
            if not to_start or not all(
                policies.is_idempotent(self.specs[attempt.step_id], node)
                for node, attempt in to_start
            ):
                return False
            self.lazy_claim_until = now + LAZY_CLAIM_SECONDS
            return True
        return not to_start and now < self.lazy_claim_until

    def _wait(self, now: float) -> None:
        wake_at = [self.deadline, *self.retry_at.values()]
        if self.claim is not None and self.lazy_claim_until is not None:
            wake_at.append(self.lazy_claim_until)
        wake_at += [a.deadline for a in self.in_flight.values() if a.deadline is not None]
        try:
            message = self.inbox.get(timeout=max(min(wake_at) - now, 0.0) + 0.001)
        except queue.Empty:
            return
        while True:
            self._handle(message)
            try:
                message = self.inbox.get_nowait()
            except queue.Empty:
                return

    def _handle(self, message: Any) -> None:
        if isinstance(message, AttemptDone):
            self.abandoned.pop((message.step_id, message.number), None)
            attempt = self.in_flight.get(message.step_id)
            if attempt is not None and attempt.number == message.number:
                del self.in_flight[message.step_id]
                self._attempt_finished(
                    attempt, message.output, message.error, message.ended, message.ended_at
                )
        elif isinstance(message, LogLine):
            attempt = self.in_flight.get(message.step_id)
            if attempt is not None and attempt.number == message.number:
                text = mask(message.text, self.secrets)[:MAX_LOG_CHARS]
                self.logs[message.step_id].append(text)
                self.events.append(
                    ("step.log", {"step": message.step_id, "attempt": message.number, "text": text})
                )

    def _expire_attempts(self, now: float) -> None:
        for attempt in list(self.in_flight.values()):
            if attempt.deadline is not None and now >= attempt.deadline:
                attempt.ctx.cancel.set()  # the run adapter kills a script's process on this
                del self.in_flight[attempt.step_id]
                self.abandoned[(attempt.step_id, attempt.number)] = attempt
                timeout = attempt.ctx.timeout_seconds
                self._attempt_finished(
                    attempt, None, StepTimeout(f"step timed out after {timeout:g} s")
                )

    # --- scheduling ----------------------------------------------------------------------------

    def _schedule(self, now: float) -> list[tuple[Any, Attempt]]:
        if self.skips_dirty:
            self.skips_dirty = False
            self._skip_unreachable()
        to_start: list[tuple[Any, Attempt]] = []
        due = [sid for sid, at in self.retry_at.items() if at <= now]
        while (due or self.ready) and not self.failure:
            if len(self.in_flight) >= self.step_concurrency:
                break
            if due:
                sid = due.pop(0)
            else:
                sid = self.ready.popleft()
                if self.status[sid] != S.PENDING:
                    continue  # skipped meanwhile
            started = self._start(sid)
            if started is not None:
                to_start.append(started)
        return to_start

    def _count_waiting(self) -> None:
        for sid in self.order:
            self.waiting[sid] = sum(1 for dep in self.deps[sid] if self.status[dep] not in DONE)
        self.ready = deque(
            sid for sid in self.order if self.status[sid] == S.PENDING and not self.waiting[sid]
        )

    def _became_done(self, sid: str) -> None:
        for dependent in self.dependents[sid]:
            self.waiting[dependent] -= 1
            if not self.waiting[dependent] and self.status[dependent] == S.PENDING:
                self.ready.append(dependent)

    def _skip_unreachable(self) -> None:
        """Dependents a branch did not choose, and what only they lead to, are skipped."""
        changed = True
        while changed:
            changed = False
            for sid in self.order:
                if self.status[sid] != S.PENDING:
                    continue
                deps = self.deps[sid]
                if sid in self.unchosen or (
                    deps and all(self.status[d] == S.SKIPPED for d in deps)
                ):
                    self._skip(
                        sid,
                        "not chosen by a branch" if sid in self.unchosen else "upstream skipped",
                    )
                    changed = True

    def _skip(self, sid: str, reason: str) -> None:
        self._set_step(sid, S.SKIPPED, finished_at=timezone.now())
        self.context["steps"][sid] = {"output": None}
        self.skips_dirty = True
        self.events.append(("step.skipped", {"step": sid, "reason": reason}))
        if self.waiting:
            self._became_done(sid)

    def _start(self, sid: str) -> tuple[Any, Attempt] | None:
        spec = self.specs[sid]
        try:
            when = spec.get("when")
            if when is not None and not evaluate(when, self.context):
                self._skip(sid, "its condition is false")
                return None
            config = render(spec.get("config") or {}, self.context)
        except ExpressionError as exc:
            return self._fail_before_start(sid, f"expression error: {exc}")
        node = self._node(sid)
        if node is None:
            return self._fail_before_start(sid, f"unknown node type {spec['type']!r}")
        if self.budget is not None and self.step_executions >= int(self.budget):
            self.failure = f"step budget exhausted: {self.budget} step executions"
            return None
        self.step_executions += 1
        self.executions_delta += 1
        self.retry_at.pop(sid, None)
        number = self.attempts[sid] + 1
        self.attempts[sid] = number
        timeout = policies.step_timeout(spec)
        ctx = StepContext(
            run_id=self.run_id,
            step_id=sid,
            attempt=number,
            config=config,
            workflow_policies=self.workflow_policies,
            timeout_seconds=timeout,
            cancel=_event(),
            log=partial(self._log_from_attempt, sid, number),
            secrets=self.secrets,
            workflow_slug=self.workflow_slug,
        )
        attempt = Attempt(sid, number, ctx)
        if timeout:
            attempt.deadline = attempt.started + timeout
        self.in_flight[sid] = attempt
        self._set_step(
            sid,
            S.RUNNING,
            attempt=number,
            input=mask(config, self.secrets),
            started_at=timezone.now(),
            finished_at=None,
            error="",
        )
        self.events.append(("step.started", {"step": sid, "attempt": number, "type": spec["type"]}))
        return node, attempt

    def _fail_before_start(self, sid: str, error: str) -> None:
        self._set_step(sid, S.FAILED, error=error, finished_at=timezone.now())
        self.events.append(
            ("step.failed", {"step": sid, "attempt": self.attempts[sid], "error": error})
        )
        self.failure = f"step {sid!r} failed: {error}"
        return None

    def _log_from_attempt(self, sid: str, number: int, text: str) -> None:
        self.inbox.put(LogLine(sid, number, str(text)))

    # --- results -------------------------------------------------------------------------------

    def _attempt_finished(
        self,
        attempt: Attempt,
        output: Any,
        error: StepError | None,
        ended: float | None = None,
        ended_at: datetime | None = None,
    ) -> None:
        sid = attempt.step_id
        duration_ms = int(((ended or time.monotonic()) - attempt.started) * 1000)
        self.ended_at = ended_at or timezone.now()
        if error is None:
            try:
                self.sizes[sid] = policies.check_output(output)
            except policies.OutputError as exc:
                error = exc
        if error is None:
            self._succeeded(sid, attempt, output, duration_ms)
        else:
            self._errored(sid, attempt, error, duration_ms)

    def _succeeded(self, sid: str, attempt: Attempt, output: Any, duration_ms: int) -> None:
        self.context["steps"][sid] = {"output": output}
        stored = mask(output, self.secrets)
        self._set_step(
            sid,
            S.SUCCEEDED,
            output=stored,
            error="",
            logs=self._logs(sid),
            finished_at=self.ended_at,
            duration_ms=duration_ms,
        )
        payload = {"step": sid, "attempt": attempt.number, "duration_ms": duration_ms}
        if self.sizes.get(sid, 0) <= EVENT_OUTPUT_MAX_BYTES:
            payload["output"] = stored
        self.events.append(("step.succeeded", payload))
        if self.specs[sid]["type"] == "branch":
            self._note_branch(sid, output)
        self._became_done(sid)

    def _note_branch(self, sid: str, output: Any) -> None:
        chosen = set((output or {}).get("chosen") or []) if isinstance(output, dict) else set()
        self.unchosen |= set(self.dependents[sid]) - chosen
        self.skips_dirty = True

    def _errored(self, sid: str, attempt: Attempt, error: StepError, duration_ms: int) -> None:
        message = mask(str(error), self.secrets)
        policy = policies.retry_policy(self.specs[sid])
        fields = {"error": message, "logs": self._logs(sid), "duration_ms": duration_ms}
        payload = {"step": sid, "attempt": attempt.number, "error": message, "kind": error.kind}
        budget_left = self.budget is None or self.step_executions < int(self.budget)
        if policies.should_retry(policy, error, attempt.number) and budget_left:
            delay = policies.retry_delay(policy, attempt.number)
            self.retry_at[sid] = time.monotonic() + delay
            self._set_step(sid, S.RETRYING, **fields)
            self.events.append(("step.retrying", {**payload, "delay_seconds": round(delay, 3)}))
            return
        self._set_step(sid, S.FAILED, finished_at=self.ended_at, **fields)
        self.events.append(("step.failed", payload))
        self.failure = f"step {sid!r} failed: {message}"

    def _completed(self) -> Outcome:
        unfinished = [sid for sid in self.order if self.status[sid] not in DONE]
        if unfinished:  # cannot happen with a valid DAG; never report success for it
            return Outcome(Run.Status.FAILED, error=f"steps never ran: {', '.join(unfinished)}")
        try:
            template = self.definition.get("output")
            if template is not None:
                output = render(template, self.context)
            else:
                sinks = [sid for sid in self.order if not self.dependents[sid]]
                output = {
                    sid: self.context["steps"][sid]["output"]
                    for sid in sinks
                    if self.status[sid] == S.SUCCEEDED
                }
            policies.check_output(output)
        except (ExpressionError, StepError) as exc:
            return Outcome(Run.Status.FAILED, error=f"run output: {exc}")
        return Outcome(Run.Status.SUCCEEDED, output=output)

    # --- ending --------------------------------------------------------------------------------

    def _finish(self, outcome: Outcome) -> Outcome:
        if outcome.status != Run.Status.SUCCEEDED:
            self._stop_in_flight(outcome)
        if outcome.status == Run.Status.CANCELLED:
            # A cancel finishes the run itself; this only covers a request nobody finished.
            outcome = Outcome(Run.Status.CANCELLED, error="cancelled")
        output = mask(outcome.output, self.secrets)
        error = mask(outcome.error, self.secrets)
        final = (outcome.status, output, error, final_event(outcome.status, error))
        try:
            # The last step's writes and the run's end share one transaction.
            won = self._flush(final=final)
        except LostOwnership:
            return Outcome("lost")
        limited = bool(self.workflow_policies.get("concurrency"))
        if won and limited:
            submit_next_queued(self.run_id)
        return outcome

    def _stop_in_flight(self, outcome: Outcome) -> None:
        for attempt in self.in_flight.values():
            attempt.ctx.cancel.set()
        # Let script steps' processes die (cancelled now, or timed out earlier) before the run
        # is reported finished; a python step that ignores its cancel is left behind.
        started = time.monotonic()
        while self.in_flight or self.abandoned:
            grace = STOP_GRACE_SECONDS if self.in_flight else ABANDONED_GRACE_SECONDS
            left = started + grace - time.monotonic()
            if left <= 0:
                break
            try:
                message = self.inbox.get(timeout=left)
            except queue.Empty:
                break
            if isinstance(message, AttemptDone):
                self.abandoned.pop((message.step_id, message.number), None)
                attempt = self.in_flight.get(message.step_id)
                if attempt is not None and attempt.number == message.number:
                    del self.in_flight[message.step_id]
        reason = {
            Run.Status.TIMED_OUT: "run timed out",
            Run.Status.CANCELLED: "run cancelled",
        }.get(outcome.status, "run failed")
        now = timezone.now()
        for sid in self.order:
            if self.status[sid] in (S.RUNNING, S.RETRYING, S.PENDING):
                self._set_step(
                    sid, S.CANCELLED, error=reason, finished_at=now, logs=self._logs(sid)
                )
                self.events.append(("step.cancelled", {"step": sid, "reason": reason}))

    # --- persistence ---------------------------------------------------------------------------

    def _set_step(self, sid: str, status: str, **fields: Any) -> None:
        self.status[sid] = status
        if status != S.RETRYING:
            self.retry_at.pop(sid, None)
        self._write_step(sid, status=status, **fields)

    def _write_step(self, sid: str, **fields: Any) -> None:
        self.writes.setdefault(sid, {}).update(fields)

    def _logs(self, sid: str) -> str:
        return mask("\n".join(self.logs[sid]), self.secrets)[-MAX_LOG_CHARS * 4 :]

    def _flush(self, final: tuple[str, Any, str, dict[str, Any]] | None = None) -> bool:
        """Persist gathered step changes and their events in one transaction; with `final`,
        finish the run in it too (returns whether that finish won)."""
        if not (self.writes or self.events or self.executions_delta or final or self.claim):
            return False
        events = [(type_, mask(payload, self.secrets)) for type_, payload in self.events]
        flushed = flush_run_changes(
            self.run_id,
            self.executor_id,
            self.executions_delta,
            self.writes,
            events,
            final,
            claim=self.claim,
        )
        if flushed is None:
            raise LostOwnership(self.run_id)
        if self.claim is not None:
            self.claim = None
            register(self.handle)  # the run is ours from now: cancels and heartbeats reach it
        reservation, _messages, won = flushed
        self.writes = {}
        self.events = []
        self.executions_delta = 0
        if reservation.status != Run.Status.RUNNING:
            self.run_status = reservation.status  # finished elsewhere (a cancel): stop
        return won

    def _node(self, sid: str):
        return get_node_type(self.specs[sid]["type"])


def _monotonic_at(moment: datetime | None) -> float:
    if moment is None:
        return float("inf")
    return time.monotonic() + (moment - timezone.now()).total_seconds()


def _event():
    import threading

    return threading.Event()
