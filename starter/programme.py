"""The whole programme against the global holdout, and each journey's send-rate waits: the
figures `journeys report` (first), `--json` and /dashboard add to each journey's own test.

The global holdout (JOURNEYS_GLOBAL_HOLDOUT) holds a share of users out of every journey that
takes part; their runs are recorded as "holdout" with reason "global" (activities/entry.py).
The programme's unit is the user, not the entry: every user who entered at least one journey
that takes part, since the first globally held-out entry (or `--since`, if later), is in
`holdout` if the global holdout holds them out and in `treatment` otherwise (each journey's own
holdout included: that is the programme as it runs). Entering is what a user does before any
message, so both groups are alike but for the messages. Per user: whether they converted in
any journey, their conversions, and the revenue of those conversions (a purchase that is the
goal of two journeys counts in each, in both groups alike). Suppressed and failed entries count
in neither group, as in each journey's report.

Each journey's own test leaves globally held-out entries out (they are counted beside it): they
were sent nothing by any journey, so mixing them into one journey's holdout would credit it with
the whole programme's effect.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import ColumnElement, Table, case, func, or_, select

from activities.store import JourneyRun, SendWait, Store
from starter import stats
from starter.experiment_report import Interval
from workflows.journey import Journey, human_duration

RUNS: Table = JourneyRun.__table__  # type: ignore[attr-defined]
WAITS: Table = SendWait.__table__  # type: ignore[attr-defined]
GLOBAL = "global"
LEFT_OUT = ("suppressed", "failed")


class ProgrammeGroup(BaseModel):
    """One side of the programme's test, counted in users."""

    users: int = 0
    converted_users: int = 0
    """Users who converted in at least one journey."""
    rate: float | None = None
    conversions: int = 0
    conversions_per_user: float | None = None
    revenue: float = 0.0
    revenue_per_user: float | None = None


class ProgrammeReport(BaseModel):
    """Every journey that takes part, together, against the users the global holdout keeps out
    of all of them: the programme's total lift."""

    share: float | None = None
    """JOURNEYS_GLOBAL_HOLDOUT where the report was made (None: not known there)."""
    since: datetime | None = None
    """Entries from here on: the first globally held-out entry, or the report's `since`."""
    journeys: list[str] = []
    """The journeys taking part (with entries in the period)."""
    not_taking_part: list[str] = []
    """Journeys declared `global_holdout = False` (transactional only): left out."""
    treatment: ProgrammeGroup = ProgrammeGroup()
    holdout: ProgrammeGroup = ProgrammeGroup()
    absolute_lift: float | None = None
    """Users converting in any journey: treatment rate minus holdout rate."""
    absolute_lift_ci: Interval | None = None
    relative_lift: float | None = None
    relative_lift_ci: Interval | None = None
    p_value: float | None = None
    significant: bool = False
    conversions_per_user_lift: float | None = None
    revenue_per_user_lift: float | None = None
    revenue_per_user_lift_ci: Interval | None = None
    incremental_revenue: float | None = None
    """(Revenue per user, treatment - holdout) x treatment users: what the programme added."""
    incremental_revenue_ci: Interval | None = None
    warning: str | None = None


def not_global() -> ColumnElement[bool]:
    """A run that is not a globally held-out entry: what each journey's own test counts."""
    return or_(RUNS.c.holdout_reason.is_(None), RUNS.c.holdout_reason != GLOBAL)


def programme_report(
    store: Store,
    classes: dict[str, type[Journey]],
    since: datetime | None,
    share: float | None,
) -> ProgrammeReport | None:
    """The programme section, or None when there is no global holdout (off where the report
    is made, and no globally held-out entry recorded)."""
    runs = RUNS.c
    exempt = sorted(name for name, cls in classes.items() if not cls.global_holdout)
    with store.engine.connect() as conn:
        first = conn.execute(
            select(func.min(runs.entered_at)).where(runs.holdout_reason == GLOBAL)
        ).scalar()
        if first is None:
            if not share:
                return None
            return ProgrammeReport(
                share=share,
                not_taking_part=exempt,
                warning="no user has entered a journey since the global holdout was turned on",
            )
        start = max(_utc(first), _utc(since)) if since is not None else _utc(first)
        where: list[ColumnElement[bool]] = [
            runs.entered_at >= start,
            or_(runs.outcome.is_(None), runs.outcome.not_in(LEFT_OUT)),
        ]
        if exempt:
            where.append(runs.journey.not_in(exempt))
        converted = runs.outcome == "converted"
        per_user = (
            select(
                runs.user_id,
                func.max(case((runs.holdout_reason == GLOBAL, 1), else_=0)).label("held"),
                func.sum(case((converted, 1), else_=0)).label("conv"),
                func.sum(case((converted, func.coalesce(runs.revenue, 0.0)), else_=0.0)).label(
                    "rev"
                ),
            )
            .where(*where)
            .group_by(runs.user_id)
            .subquery()
        )
        u = per_user.c
        groups = conn.execute(
            select(
                u.held,
                func.count(),
                func.sum(case((u.conv > 0, 1), else_=0)),
                func.sum(u.conv),
                func.coalesce(func.sum(u.rev), 0.0),
                func.coalesce(func.sum(u.rev * u.rev), 0.0),
            ).group_by(u.held)
        ).all()
        names = conn.execute(select(runs.journey).where(*where).distinct()).scalars().all()
    sums: dict[str, tuple[int, int, int, float, float]] = {}
    for held, users, conv_users, conversions, revenue, squares in groups:
        group = "holdout" if held else "treatment"
        sums[group] = (
            int(users),
            int(conv_users or 0),
            int(conversions or 0),
            float(revenue or 0),
            float(squares or 0),
        )
    report = ProgrammeReport(
        share=share, since=start, journeys=sorted(names), not_taking_part=exempt
    )
    t_users, t_conv, t_n, t_rev, t_sq = sums.get("treatment", (0, 0, 0, 0.0, 0.0))
    h_users, h_conv, h_n, h_rev, h_sq = sums.get("holdout", (0, 0, 0, 0.0, 0.0))
    report.treatment = _group(t_users, t_conv, t_n, t_rev)
    report.holdout = _group(h_users, h_conv, h_n, h_rev)
    lift = stats.lift(t_conv, t_users, h_conv, h_users)
    report.absolute_lift, report.relative_lift = lift.absolute, lift.relative
    report.absolute_lift_ci = _interval(lift.absolute_ci)
    report.relative_lift_ci = _interval(lift.relative_ci)
    report.p_value = lift.p_value
    t, h = report.treatment, report.holdout
    if t.conversions_per_user is not None and h.conversions_per_user is not None:
        report.conversions_per_user_lift = t.conversions_per_user - h.conversions_per_user
    money = stats.revenue(t_rev, t_sq, t_users, h_rev, h_sq, h_users)
    report.incremental_revenue = money.incremental
    report.incremental_revenue_ci = _interval(money.incremental_ci)
    if money.incremental is not None and t_users:
        report.revenue_per_user_lift = money.incremental / t_users
        if money.incremental_ci is not None:
            ci = money.incremental_ci
            report.revenue_per_user_lift_ci = Interval(low=ci.low / t_users, high=ci.high / t_users)
    report.warning = stats.too_small(t_conv, t_users, h_conv, h_users)
    report.significant = (
        report.warning is None
        and lift.absolute_ci is not None
        and not lift.absolute_ci.contains(0.0)
    )
    return report


def _group(users: int, converted: int, conversions: int, revenue: float) -> ProgrammeGroup:
    return ProgrammeGroup(
        users=users,
        converted_users=converted,
        rate=stats.rate(converted, users),
        conversions=conversions,
        conversions_per_user=conversions / users if users else None,
        revenue=round(revenue, 2),
        revenue_per_user=revenue / users if users else None,
    )


class ThrottleFigures(BaseModel):
    """A journey's sends that waited for its `send_rate`."""

    sends: int = 0
    """Sends that waited for their slot at least once."""
    longest_wait: timedelta | None = None
    """The longest a send waited for its slot, from its first wait to its last slot."""
    by_step: dict[str, int] = {}
    """Waits for a slot, per step."""


def throttle_figures(store: Store, journey: str, since: datetime | None) -> ThrottleFigures:
    """From `send_waits`, for runs entered since `since`."""
    waits, runs = WAITS.c, RUNS.c
    where: list[ColumnElement[bool]] = [waits.journey == journey, waits.throttled > 0]
    query = select(waits.template, waits.throttled, waits.first_at, waits.due_at).where(*where)
    if since is not None:
        query = query.join(RUNS, runs.run_id == waits.run_id).where(runs.entered_at >= since)
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    figures = ThrottleFigures(sends=len(rows))
    for template, throttled, first_at, due_at in rows:
        figures.by_step[template] = figures.by_step.get(template, 0) + int(throttled)
        wait = _utc(due_at) - _utc(first_at)
        if figures.longest_wait is None or wait > figures.longest_wait:
            figures.longest_wait = wait
    return figures


def programme_lines(
    p: ProgrammeReport,
    percent: Callable[[float | None], str],
    points: Callable[[float | None], str],
    money: Callable[[float | None], str],
    ci: Callable[[Any, Callable[[float | None], str]], str],
    p_phrase: Callable[[float | None], str],
) -> list[str]:
    """The programme block of `journeys report`, printed before the journeys."""
    share = f"{p.share * 100:g}% " if p.share else ""
    since = f", entries since {p.since:%Y-%m-%d %H:%M} UTC" if p.since else ""
    out = [
        f"programme: every journey against the {share}global holdout, in users{since}",
        f"  {'group':<10} {'users':>8} {'converted':>10} {'rate':>8} {'conv./user':>11} "
        f"{'revenue/user':>13}",
    ]
    for label, g in (("treatment", p.treatment), ("holdout", p.holdout)):
        per_user = "-" if g.conversions_per_user is None else f"{g.conversions_per_user:.3f}"
        out.append(
            f"  {label:<10} {g.users:>8} {g.converted_users:>10} {percent(g.rate):>8} "
            f"{per_user:>11} {money(g.revenue_per_user):>13}"
        )
    out.append(
        f"  lift: {points(p.absolute_lift)} ({ci(p.absolute_lift_ci, points)}), relative "
        f"{_signed(p.relative_lift)}, p {p_phrase(p.p_value)}"
        + ("  significant" if p.significant else "")
    )
    out.append(
        f"  revenue per user: {_signed_money(p.revenue_per_user_lift)} "
        f"({ci(p.revenue_per_user_lift_ci, money)}), incremental revenue "
        f"{money(p.incremental_revenue)}"
    )
    if p.journeys:
        out.append(f"  journeys: {', '.join(p.journeys)}")
    if p.not_taking_part:
        out.append(f"  not in the global holdout: {', '.join(p.not_taking_part)}")
    if p.warning:
        out.append(f"  ! {p.warning}")
    return out


def throttle_line(rate: str | None, figures: ThrottleFigures | None) -> str | None:
    """ "send rate Rate(1000, per=1h): 12 sends waited for their slot, the longest 2h" """
    if rate is None and (figures is None or not figures.sends):
        return None
    head = f"  send rate {rate}" if rate else "  send rate (no longer declared)"
    if figures is None or not figures.sends:
        return f"{head}: no send has waited"
    longest = human_duration(figures.longest_wait) if figures.longest_wait else "-"
    return f"{head}: {figures.sends} sends waited for their slot, the longest {longest}"


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.1f}%"


def _signed_money(value: float | None) -> str:
    return "-" if value is None else f"{value:+,.2f}"


def _interval(interval: stats.Interval | None) -> Interval | None:
    return Interval(low=interval.low, high=interval.high) if interval is not None else None


def _utc(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)
