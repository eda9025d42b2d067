"""Each journey's results against its holdout: the numbers behind `journeys report` and /dashboard.

Everything comes from what the activities recorded: one `journey_runs` row per entry (group,
outcome, goal time, revenue) and one `journey_steps` row per step a run reached (sent, held
out, skipped with its reason, failed). A conversion is a run the engine closed as
"converted": its goal arrived inside the journey's attribution window. Runs still inside their
window count in their group's size and not (yet) as conversions, in both groups alike.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy import Table, and_, case, func, select

from activities.store import JourneyRun, JourneyStepRow, Store
from starter import stats
from workflows.errors import UnknownJourneyError
from workflows.identity import user_key
from workflows.journey import Journey, human_duration

RUNS: Table = JourneyRun.__table__  # type: ignore[attr-defined]
STEPS: Table = JourneyStepRow.__table__  # type: ignore[attr-defined]
QUIET_HOURS_PREFIX = "quiet hours before "
REACHED = ("sent", "unknown", "held_out", "skipped", "failed")


class Interval(BaseModel):
    low: float
    high: float


class GroupResult(BaseModel):
    """One arm of the test."""

    size: int = 0
    converted: int = 0
    rate: float | None = None
    revenue: float = 0.0
    revenue_per_user: float | None = None
    in_window: int = 0
    """Entered and still inside the attribution window: may yet convert."""


class StepResult(BaseModel):
    """One send step, in journey order: what happened to it and who converted after it."""

    step: str
    sent: int = 0
    unconfirmed: int = 0
    """A provider call whose answer was lost: maybe delivered, never resent."""
    held_out: int = 0
    skipped: dict[str, int] = {}
    """By reason: frequency_cap, unsubscribed, no_consent, paused, stale, address_suppressed..."""
    failed: dict[str, int] = {}
    deferred_quiet_hours: int = 0
    """Held until the user's quiet hours ended (then sent, skipped or ended by the goal)."""
    conversions_after_treatment: int = 0
    """Treatment runs that reached this step and converted after it."""
    conversions_after_holdout: int = 0


class JourneyReport(BaseModel):
    journey: str
    attribution_window: str | None = None
    holdout_share: float | None = None
    entered: int = 0
    treatment: GroupResult = GroupResult()
    holdout: GroupResult = GroupResult()
    absolute_lift: float | None = None
    absolute_lift_ci: Interval | None = None
    relative_lift: float | None = None
    relative_lift_ci: Interval | None = None
    p_value: float | None = None
    significant: bool = False
    """The 95 % interval of the absolute lift excludes zero and the groups are large enough."""
    incremental_revenue: float | None = None
    incremental_revenue_ci: Interval | None = None
    warning: str | None = None
    exits: dict[str, int] = {}
    """How runs ended, as outcome or outcome:reason (suppressed:low_cart_value, ...)."""
    steps: list[StepResult] = []


class Report(BaseModel):
    generated_at: datetime
    since: datetime | None = None
    journeys: list[JourneyReport]


def build_report(
    store: Store,
    journeys: list[type[Journey]] | None = None,
    *,
    journey: str | None = None,
    since: datetime | None = None,
) -> Report:
    """The report for every journey with entries (and every loaded one), or just `journey`.

    Raises:
        UnknownJourneyError: `journey` is neither loaded nor has any entry recorded.
    """
    classes = {cls.name: cls for cls in journeys or []}
    recorded = _journeys_with_runs(store)
    if journey is not None:
        if journey not in classes and journey not in recorded:
            known = ", ".join(sorted(set(classes) | set(recorded))) or "none"
            raise UnknownJourneyError(f"unknown journey {journey!r} (known: {known})")
        names = [journey]
    else:
        names = sorted(set(classes) | set(recorded))
    results = [_journey_report(store, name, classes.get(name), since) for name in names]
    return Report(generated_at=datetime.now(UTC), since=since, journeys=results)


def _journeys_with_runs(store: Store) -> list[str]:
    query = select(RUNS.c.journey).distinct()
    with store.engine.connect() as conn:
        return sorted(conn.execute(query).scalars())


def _journey_report(
    store: Store, name: str, cls: type[Journey] | None, since: datetime | None
) -> JourneyReport:
    runs = RUNS.c
    where = [runs.journey == name]
    if since is not None:
        where.append(runs.entered_at >= since)
    converted = runs.outcome == "converted"
    revenue = func.coalesce(case((converted, runs.revenue), else_=0.0), 0.0)
    groups = (
        select(
            runs.group,
            func.count(),
            func.sum(case((converted, 1), else_=0)),
            func.coalesce(func.sum(revenue), 0.0),
            func.coalesce(func.sum(revenue * revenue), 0.0),
            func.sum(case((runs.outcome.is_(None), 1), else_=0)),
        )
        .where(*where)
        .group_by(runs.group)
    )
    exits = (
        select(runs.outcome, runs.outcome_reason, func.count())
        .where(*where, runs.outcome.is_not(None))
        .group_by(runs.outcome, runs.outcome_reason)
    )
    with store.engine.connect() as conn:
        by_group = {row[0]: row[1:] for row in conn.execute(groups)}
        exit_rows = list(conn.execute(exits))
    report = JourneyReport(journey=name)
    if cls is not None:
        report.holdout_share = cls.holdout
        if cls.goal is not None:
            report.attribution_window = human_duration(cls.goal.within)

    sums: dict[str, tuple[float, float]] = {}
    for group in ("treatment", "holdout"):
        size, conv, total, squares, open_runs = by_group.get(group, (0, 0, 0.0, 0.0, 0))
        size, conv = int(size or 0), int(conv or 0)
        total, squares = float(total or 0), float(squares or 0)
        sums[group] = (total, squares)
        setattr(
            report,
            group,
            GroupResult(
                size=size,
                converted=conv,
                rate=stats.rate(conv, size),
                revenue=round(total, 2),
                revenue_per_user=total / size if size else None,
                in_window=int(open_runs or 0),
            ),
        )
    t, h = report.treatment, report.holdout
    report.entered = t.size + h.size
    lift = stats.lift(t.converted, t.size, h.converted, h.size)
    report.absolute_lift, report.relative_lift = lift.absolute, lift.relative
    report.absolute_lift_ci = _interval(lift.absolute_ci)
    report.relative_lift_ci = _interval(lift.relative_ci)
    report.p_value = lift.p_value
    money = stats.revenue(*sums["treatment"], t.size, *sums["holdout"], h.size)
    report.incremental_revenue = money.incremental
    report.incremental_revenue_ci = _interval(money.incremental_ci)
    report.warning = stats.too_small(t.converted, t.size, h.converted, h.size)
    report.significant = (
        report.warning is None
        and lift.absolute_ci is not None
        and not lift.absolute_ci.contains(0.0)
    )
    for outcome, reason, count in exit_rows:
        key = outcome if not reason or outcome == "converted" else f"{outcome}:{reason}"
        report.exits[key] = report.exits.get(key, 0) + int(count)
    report.steps = _steps(store, name, since)
    return report


def _steps(store: Store, name: str, since: datetime | None) -> list[StepResult]:
    runs, steps = RUNS.c, STEPS.c
    where = [runs.journey == name, steps.kind.in_(("send", "quiet_hours"))]
    if since is not None:
        where.append(runs.entered_at >= since)
    converted_after = and_(
        runs.outcome == "converted", runs.goal_at.is_not(None), runs.goal_at >= steps.at
    )
    query = (
        select(
            steps.kind,
            steps.name,
            runs.group,
            steps.status,
            steps.detail,
            func.count(),
            func.sum(case((converted_after, 1), else_=0)),
            func.min(steps.seq),
        )
        .select_from(STEPS.join(RUNS, runs.run_id == steps.run_id))
        .where(*where)
        .group_by(steps.kind, steps.name, runs.group, steps.status, steps.detail)
    )
    with store.engine.connect() as conn:
        rows = list(conn.execute(query))
    results: dict[str, StepResult] = {}
    order: dict[str, int] = defaultdict(lambda: 1 << 30)
    deferred: dict[str, int] = defaultdict(int)
    for kind, step, group, status, detail, count, after, first_seq in rows:
        count, after = int(count), int(after or 0)
        if kind == "quiet_hours":
            deferred[step.removeprefix(QUIET_HOURS_PREFIX)] += count
            continue
        result = results.setdefault(step, StepResult(step=step))
        order[step] = min(order[step], int(first_seq))
        if status == "sent":
            result.sent += count
        elif status == "unknown":
            result.unconfirmed += count
        elif status == "held_out":
            result.held_out += count
        elif status == "failed":
            reason = detail if detail and len(detail) <= 40 else "error"
            result.failed[reason] = result.failed.get(reason, 0) + count
        else:
            reason = detail or status
            result.skipped[reason] = result.skipped.get(reason, 0) + count
        if status in REACHED:
            if group == "holdout":
                result.conversions_after_holdout += after
            else:
                result.conversions_after_treatment += after
    for step, count in deferred.items():
        if step in results:
            results[step].deferred_quiet_hours = count
    return sorted(results.values(), key=lambda r: (order[r.step], r.step))


def _interval(interval: stats.Interval | None) -> Interval | None:
    return Interval(low=interval.low, high=interval.high) if interval is not None else None


# Text -------------------------------------------------------------------------------------------


def render_text(report: Report) -> str:
    """The report as a readable table, one block per journey."""
    out: list[str] = []
    if report.since is not None:
        out.append(f"Entries since {report.since:%Y-%m-%d %H:%M} UTC")
    if not report.journeys:
        out.append("No journeys loaded and no entries recorded yet.")
    for j in report.journeys:
        out.append("")
        window = f", attribution window {j.attribution_window}" if j.attribution_window else ""
        out.append(f"{j.journey}: {j.entered} entered{window}")
        out.append(
            f"  {'group':<10} {'users':>8} {'converted':>10} {'rate':>8} {'revenue/user':>13}"
        )
        for label, g in (("treatment", j.treatment), ("holdout", j.holdout)):
            out.append(
                f"  {label:<10} {g.size:>8} {g.converted:>10} {percent(g.rate):>8} "
                f"{money(g.revenue_per_user):>13}"
            )
        open_runs = j.treatment.in_window + j.holdout.in_window
        if open_runs:
            out.append(f"  {open_runs} still inside their attribution window")
        relative = _ci(j.relative_lift_ci, signed_percent)
        out.append(
            f"  lift: {points(j.absolute_lift)} ({_ci(j.absolute_lift_ci, points)}), "
            f"relative {signed_percent(j.relative_lift)} ({relative}), "
            f"p {p_phrase(j.p_value)}{'  significant' if j.significant else ''}"
        )
        out.append(
            f"  incremental revenue: {money(j.incremental_revenue)} "
            f"({_ci(j.incremental_revenue_ci, money)})"
        )
        if j.warning:
            out.append(f"  ! {j.warning}")
        if j.exits:
            out.append("  exits: " + ", ".join(f"{k} {v}" for k, v in sorted(j.exits.items())))
        if j.steps:
            out.append(
                f"  {'step':<24} {'sent':>6} {'held out':>9} {'skipped':>8} {'failed':>7} "
                f"{'conv. after (T/H)':>18}  skipped by reason"
            )
            for s in j.steps:
                reasons = dict(s.skipped)
                if s.deferred_quiet_hours:
                    reasons["deferred by quiet hours"] = s.deferred_quiet_hours
                if s.unconfirmed:
                    reasons["unconfirmed"] = s.unconfirmed
                conv = f"{s.conversions_after_treatment}/{s.conversions_after_holdout}"
                out.append(
                    f"  {s.step[:24]:<24} {s.sent:>6} {s.held_out:>9} "
                    f"{sum(s.skipped.values()):>8} {sum(s.failed.values()):>7} {conv:>18}  "
                    + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items()))
                )
    return "\n".join(line.rstrip() for line in out).lstrip("\n") + "\n"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


def signed_percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.1f}%"


def points(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.2f} pts"


def money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def p_text(value: float | None) -> str:
    if value is None:
        return "-"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def p_phrase(value: float | None) -> str:
    """ "= 0.031" or "< 0.001", to follow a "p"."""
    text = p_text(value)
    return f"< {text[1:]}" if text.startswith("<") else f"= {text}"


def _ci(interval: Interval | None, show: Callable[[float | None], str]) -> str:
    if interval is None:
        return "95% CI -"
    return f"95% CI {show(interval.low)} to {show(interval.high)}"


# Recent activity ----------------------------------------------------------------------------


class RecentStep(BaseModel):
    """One send step as it happened: sent, held out, skipped (with why) or failed."""

    at: datetime
    journey: str
    step: str
    group: str
    status: str
    reason: str | None
    user: str
    """The user key (a hash for IDs that are not plain identifiers, like email addresses)."""


def recent_steps(store: Store, limit: int = 50, journey: str | None = None) -> list[RecentStep]:
    """The newest send steps first, across journeys (or of one)."""
    runs, steps = RUNS.c, STEPS.c
    query = (
        select(
            steps.at, runs.journey, steps.name, runs.group, steps.status, steps.detail, runs.user_id
        )
        .select_from(STEPS.join(RUNS, runs.run_id == steps.run_id))
        .where(steps.kind == "send")
        .order_by(steps.at.desc(), steps.id.desc())
        .limit(limit)
    )
    if journey is not None:
        query = query.where(runs.journey == journey)
    with store.engine.connect() as conn:
        rows = list(conn.execute(query))
    return [
        RecentStep(
            at=at,
            journey=name,
            step=step,
            group=group,
            status=status,
            reason=detail if status != "sent" else None,
            user=user_key(user_id),
        )
        for at, name, step, group, status, detail, user_id in rows
    ]
