"""A workflow's DAG as an SVG drawn on the server: no JavaScript library, works offline.

Layout is the simple layered kind: a step's column is the length of the longest dependency
path that leads to it, and within a column steps are ordered by the average row of their
dependencies (one barycentre pass), which keeps most arrows short and uncrossed.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from html import escape
from typing import Any

from workflows.definition import STEP_POLICY_DEFAULTS

BOX_WIDTH = 164
BOX_HEIGHT = 62
COLUMN_GAP = 52
ROW_GAP = 22
MARGIN = 16

# Fill and stroke per step status; the run page's script swaps `data-status` live.
STYLE = """
.dag text{font:12px system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;fill:#1f2933}
.dag .id{font-weight:600;font-size:13px}
.dag .type{fill:#52606d}
.dag .badge rect{fill:#eef2f7;stroke:none}
.dag .badge text{font-size:10px;fill:#334e68}
.dag .edge{fill:none;stroke:#9aa5b1;stroke-width:1.6}
.dag .box{fill:#ffffff;stroke:#7b8794;stroke-width:1.4}
.dag [data-status=pending] .box{fill:#f5f7fa;stroke:#9aa5b1;stroke-dasharray:4 3}
.dag [data-status=running] .box{fill:#e3f0ff;stroke:#2680c2;stroke-width:2.4}
.dag [data-status=retrying] .box{fill:#fff8e1;stroke:#de911d;stroke-width:2}
.dag [data-status=succeeded] .box{fill:#e3f9e5;stroke:#31a05f}
.dag [data-status=failed] .box{fill:#ffe3e3;stroke:#cf1124;stroke-width:2}
.dag [data-status=skipped] .box{fill:#f5f7fa;stroke:#cbd2d9}
.dag [data-status=skipped] text{fill:#9aa5b1}
.dag [data-status=cancelled] .box{fill:#f0f0f0;stroke:#616e7c;stroke-dasharray:2 2}
"""


@dataclass(frozen=True)
class Placed:
    step: dict[str, Any]
    column: int
    row: float

    @property
    def x(self) -> int:
        return MARGIN + self.column * (BOX_WIDTH + COLUMN_GAP)

    @property
    def y(self) -> int:
        return MARGIN + round(self.row * (BOX_HEIGHT + ROW_GAP))


def step_columns(steps: list[dict[str, Any]]) -> dict[str, int]:
    """Longest-path layering; unknown dependencies are ignored and a cycle cannot loop."""
    by_id = {s["id"]: s for s in steps}
    columns: dict[str, int] = {}

    def column(step_id: str, path: frozenset[str]) -> int:
        if step_id in columns:
            return columns[step_id]
        deps = [d for d in by_id[step_id].get("depends_on") or [] if d in by_id and d not in path]
        value = 1 + max((column(d, path | {step_id}) for d in deps), default=-1)
        columns[step_id] = value
        return value

    for step_id in by_id:
        column(step_id, frozenset())
    return columns


def layout(steps: list[dict[str, Any]]) -> list[Placed]:
    columns = step_columns(steps)
    rows: dict[str, float] = {}
    placed: list[Placed] = []
    width = max(columns.values(), default=-1) + 1
    tallest = max(sum(1 for c in columns.values() if c == col) for col in range(width))
    for col in range(width):
        members = [s for s in steps if columns[s["id"]] == col]
        offset = (tallest - len(members)) / 2  # centre short columns on the tallest one

        def barycentre(step: dict[str, Any], original: int) -> tuple[float, int]:
            parents = [rows[d] for d in step.get("depends_on") or [] if d in rows]
            return (sum(parents) / len(parents) if parents else original, original)

        ordered = sorted(members, key=lambda s: barycentre(s, members.index(s)))
        for row, step in enumerate(ordered):
            rows[step["id"]] = row + offset
            placed.append(Placed(step, col, row + offset))
    return placed


def policy_badges(step: dict[str, Any]) -> list[str]:
    """Badges for policies that differ from the defaults (every step has a timeout)."""
    policies = step.get("policies") or {}
    badges = []
    attempts = (policies.get("retries") or {}).get("max_attempts") or 1
    if isinstance(attempts, int) and attempts > 1:
        badges.append(f"↻ {attempts} tries")
    timeout = policies.get("timeout_seconds")
    if (
        isinstance(timeout, int | float)
        and not isinstance(timeout, bool)
        and timeout != STEP_POLICY_DEFAULTS["timeout_seconds"]
    ):
        badges.append(f"timeout {timeout:g}s")
    if policies.get("idempotent") is True:
        badges.append("idempotent")
    if step.get("when"):
        badges.append("conditional")
    return badges


def render_svg(definition: dict[str, Any], statuses: dict[str, str] | None = None) -> str:
    """Return an `<svg>` of the definition's steps; `statuses` (step id to status) colours them."""
    steps = [s for s in definition.get("steps") or [] if isinstance(s, dict) and s.get("id")]
    if not steps:
        return '<p class="dag-empty">This workflow has no steps.</p>'
    placed = layout(steps)
    where = {p.step["id"]: p for p in placed}
    width = MARGIN * 2 + max(p.x for p in placed) - MARGIN + BOX_WIDTH
    height = MARGIN * 2 + max(p.y for p in placed) - MARGIN + BOX_HEIGHT
    parts = [
        f'<svg class="dag" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'style="max-width:100%;height:auto" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="Workflow steps and dependencies">',
        f"<style>{STYLE}</style>",
        '<defs><marker id="dag-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#9aa5b1"/></marker></defs>',
    ]
    tops: dict[int, list[int]] = {}
    for p in placed:
        tops.setdefault(p.column, []).append(p.y)
    for p in placed:
        for dep in p.step.get("depends_on") or []:
            if dep in where and where[dep].column < p.column:
                parts.append(_edge(where[dep], p, tops))
    for p in placed:
        status = (statuses or {}).get(p.step["id"], "pending" if statuses is not None else "")
        parts.append(_box(p, status))
    parts.append("</svg>")
    return "".join(parts)


def _edge(source: Placed, target: Placed, tops: dict[int, list[int]]) -> str:
    """A smooth arrow; one that skips columns runs through the gaps between their boxes."""
    x1, y1 = source.x + BOX_WIDTH, source.y + BOX_HEIGHT / 2
    x2, y2 = target.x - 2, target.y + BOX_HEIGHT / 2
    points = [(x1, y1)]
    for column in range(source.column + 1, target.column):
        left = MARGIN + column * (BOX_WIDTH + COLUMN_GAP)
        share = (left + BOX_WIDTH / 2 - x1) / (x2 - x1)
        lane = _free_lane(y1 + share * (y2 - y1), tops.get(column, []))
        points += [(left - 8, lane), (left + BOX_WIDTH + 8, lane)]
    points.append((x2, y2))
    d = f"M{x1:g},{y1:g}"
    for (ax, ay), (bx, by) in itertools.pairwise(points):
        if ay == by:
            d += f" L{bx:g},{by:g}"
        else:
            bend = max((bx - ax) / 2, 12)
            d += f" C{ax + bend:g},{ay:g} {bx - bend:g},{by:g} {bx:g},{by:g}"
    return (
        f'<path class="edge" data-from="{escape(source.step["id"])}" '
        f'data-to="{escape(target.step["id"])}" marker-end="url(#dag-arrow)" d="{d}"/>'
    )


def _free_lane(y: float, tops: list[int]) -> float:
    for top in tops:
        if top - 4 <= y <= top + BOX_HEIGHT + 4:
            above, below = top - ROW_GAP / 2, top + BOX_HEIGHT + ROW_GAP / 2
            return above if abs(y - above) <= abs(y - below) else below
    return y


def _box(p: Placed, status: str) -> str:
    step_id = escape(str(p.step["id"]))
    node_type = escape(str(p.step.get("type", "?")))
    status_attr = f' data-status="{escape(status)}"' if status else ""
    title = f"{step_id} ({node_type}){': ' + escape(status) if status else ''}"
    title += escape(_policy_summary(p.step))
    out = [
        f'<g class="node" data-step="{step_id}"{status_attr} '
        f'transform="translate({p.x},{p.y})"><title>{title}</title>',
        f'<rect class="box" width="{BOX_WIDTH}" height="{BOX_HEIGHT}" rx="8"/>',
        f'<text class="id" x="12" y="20">{escape(_clip(str(p.step["id"]), 20))}</text>',
        f'<text class="type" x="12" y="36">{node_type}</text>',
    ]
    x = 12
    for badge in policy_badges(p.step):
        w = 10 + int(5.8 * len(badge))
        if x + w > BOX_WIDTH - 6:
            break
        out.append(
            f'<g class="badge" transform="translate({x},43)"><rect width="{w}" height="14" '
            f'rx="7"/><text x="4" y="10.5">{escape(badge)}</text></g>'
        )
        x += w + 4
    out.append("</g>")
    return "".join(out)


def _policy_summary(step: dict[str, Any]) -> str:
    policies = step.get("policies") or {}
    retries = policies.get("retries") or {}
    facts = []
    if policies.get("timeout_seconds") is not None:
        facts.append(f"timeout {policies['timeout_seconds']} s")
    if retries.get("max_attempts"):
        facts.append(f"up to {retries['max_attempts']} attempt(s)")
    if retries.get("backoff") and (retries.get("max_attempts") or 1) > 1:
        facts.append(f"{retries['backoff']} backoff")
    deps = step.get("depends_on") or []
    if deps:
        facts.append("after " + ", ".join(map(str, deps)))
    return ("\n" + "; ".join(facts)) if facts else ""


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
