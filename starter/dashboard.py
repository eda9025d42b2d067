"""GET /dashboard: every journey's lift against its holdout, live counts, funnel, recent sends.

Each journey's groups are counted in entries (a user who re-entered counts once per entry), with
conversion within the goal's early window, the median time to convert, the entry paths side by
side, and what is in neither group (suppressed and failed entries, refused triggers).

Server-rendered (one Jinja2 page, inline SVG, no JavaScript), so it works wherever the API
does. Results come from the database (`starter.report`); the live counts of running journeys by
step come from Temporal visibility through the JourneyName and JourneyStep search attributes,
and each journey links to its list in the Temporal Web UI. Like /outbox it takes the API key as
a Bearer header, or a browser's session cookie from /signin (starter/browser_auth.py); its own
links never carry the key.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from temporalio.client import Client

from starter.browser_auth import page_refusal
from starter.engagement import COMPLAINT_LIMIT
from starter.report import (
    JourneyReport,
    Report,
    build_report,
    money,
    outside_groups,
    p_phrase,
    p_text,
    percent,
    points,
    recent_steps,
)
from starter.settings import Settings
from workflows.errors import UnknownJourneyError
from workflows.journey import human_duration

log = logging.getLogger("journeys.dashboard")

router = APIRouter(include_in_schema=False)

_PAGES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_PAGES.globals.update(
    pct=percent,
    pts=points,
    money=money,
    pval=p_text,
    duration=human_duration,
    outside_groups=outside_groups,
    complaint_limit=COMPLAINT_LIMIT,
)

SAMPLE = 1000
"""Running workflows listed per journey to find which steps they are at (then counted exactly)."""


@dataclass
class LiveCounts:
    """Running journeys of one kind, by the step they are at (from Temporal visibility)."""

    running: int = 0
    by_step: dict[str, int] = field(default_factory=dict)
    error: str | None = None


async def live_counts(client: Client, journey: str) -> LiveCounts:
    """Exact counts: the total, and per step seen in a sample of up to SAMPLE running ones.

    Temporal's count API groups only by execution status, so the steps come from listing,
    and each step's number from its own count query.
    """
    running = f"JourneyName = '{journey}' AND ExecutionStatus = 'Running'"
    try:
        total = (await client.count_workflows(running)).count
        steps: dict[str, int] = {}
        async for wf in client.list_workflows(running, limit=SAMPLE, page_size=SAMPLE):
            values = wf.search_attributes.get("JourneyStep") or ["entering"]
            step = str(values[0])
            steps[step] = steps.get(step, 0) + 1
        if total > SAMPLE:  # a sample: count each step it found exactly
            for step in list(steps):
                if "'" not in step:
                    query = f"{running} AND JourneyStep = '{step}'"
                    steps[step] = (await client.count_workflows(query)).count
        return LiveCounts(running=total, by_step=dict(sorted(steps.items())))
    except Exception as err:  # the page still shows the recorded results without Temporal
        log.warning("live counts for %s unavailable: %s", journey, err)
        return LiveCounts(error="Temporal is unreachable: live counts unavailable")


def temporal_ui_link(settings: Settings, journey: str) -> str:
    """The journey's running workflows in the Temporal Web UI."""
    query = urlencode({"query": f'JourneyName="{journey}"'}, quote_via=quote)
    namespace = quote(settings.temporal_namespace)
    return f"{settings.temporal_ui()}/namespaces/{namespace}/workflows?{query}"


@dataclass
class LiftRow:
    """One journey's lift, placed on the chart's shared axis (x in pixels)."""

    journey: str
    label: str
    x_low: float | None = None
    x_point: float | None = None
    x_high: float | None = None
    tone: str = "neutral"


@dataclass
class LiftChart:
    width: int
    height: int
    x_zero: float
    ticks: list[tuple[float, str]]
    rows: list[LiftRow]


CHART_LEFT, CHART_WIDTH, ROW = 190, 460, 34


def lift_chart(report: Report) -> LiftChart:
    """Absolute lift with its 95 % interval per journey, on one axis symmetric around zero."""
    bounds = [
        abs(v)
        for j in report.journeys
        if j.absolute_lift_ci is not None
        for v in (j.absolute_lift_ci.low, j.absolute_lift_ci.high)
    ]
    span = max([0.05, *bounds]) * 1.1

    def x(value: float) -> float:
        return round(CHART_LEFT + (value + span) / (2 * span) * CHART_WIDTH, 1)

    rows = []
    for j in report.journeys:
        row = LiftRow(journey=j.journey, label=_lift_label(j))
        if j.absolute_lift is not None and j.absolute_lift_ci is not None:
            row.x_low, row.x_point = x(j.absolute_lift_ci.low), x(j.absolute_lift)
            row.x_high = x(j.absolute_lift_ci.high)
            if j.significant:
                row.tone = "up" if j.absolute_lift > 0 else "down"
        rows.append(row)
    step = span / 2
    ticks = [(x(v), f"{v * 100:+.1f}") for v in (-2 * step, -step, 0.0, step, 2 * step)]
    return LiftChart(
        width=CHART_LEFT + CHART_WIDTH + 150,
        height=ROW * max(1, len(rows)) + 40,
        x_zero=x(0.0),
        ticks=ticks,
        rows=rows,
    )


def _lift_label(j: JourneyReport) -> str:
    if j.absolute_lift is None:
        return "no entries yet"
    text = f"{j.absolute_lift * 100:+.2f} pts"
    if j.p_value is not None:
        text += f", p {p_phrase(j.p_value)}"
    return text


@router.get("/dashboard")
async def dashboard(
    request: Request, journey: str | None = None, since: str | None = None
) -> Response:
    """Results for every journey (or `?journey=`), entries since `?since=` (ISO date)."""
    if (refusal := page_refusal(request)) is not None:
        return refusal
    state = request.app.state
    settings: Settings = state.settings
    try:
        since_at = _since(since)
    except ValueError:
        return HTMLResponse(
            f"<h1>400</h1><p>since must be an ISO date, got {escape(repr(since))}</p>", 400
        )
    try:
        report = await asyncio.to_thread(
            build_report,
            state.store,
            state.router.journeys,
            journey=journey,
            since=since_at,
            global_holdout=settings.global_holdout,
        )
    except UnknownJourneyError as err:
        return HTMLResponse(f"<h1>404</h1><p>{escape(str(err))}</p>", 404)
    names = [j.journey for j in report.journeys]
    counts = await asyncio.gather(*(live_counts(state.client, name) for name in names))
    recent = await asyncio.to_thread(recent_steps, state.store, 50, journey)
    page = _PAGES.get_template("dashboard.html").render(
        report=report,
        chart=lift_chart(report),
        live=dict(zip(names, counts, strict=True)),
        recent=recent,
        links={name: temporal_ui_link(settings, name) for name in names},
        ui_url=settings.temporal_ui(),
        signed_in_with_key=settings.api_key is not None,
        paused=set(await asyncio.to_thread(state.store.paused_journeys)),
        now=datetime.now(UTC),
    )
    return HTMLResponse(page)


def _since(text: str | None) -> datetime | None:
    if not text:
        return None
    when = datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=UTC)
