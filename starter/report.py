"""Each journey's results against its holdout: the numbers behind `journeys report` and /dashboard.

Everything comes from what the activities recorded: one `journey_runs` row per entry (group,
entry event, outcome, goal time, revenue), one `journey_steps` row per step a run reached (sent,
held out, skipped with its reason, failed) and one `journey_refusals` row per trigger refused
inside a re-entry window.

The unit is the entry, not the user: a user who re-enters after the journey's re-entry window
counts once per entry, in the group their user ID hashes to. A conversion is an entry the engine
closed as "converted": its goal arrived inside the journey's attribution window. Entries still
inside their window count in their group and not (yet) as conversions, in both groups alike.
Suppressed entries (decided at entry, in both groups alike) and failed ones (a definition
error) are in neither group: they are counted beside the test, as refusals are. Users who never
entered (a cart bought inside its inaction window) have no row, so nothing to leave out.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import ColumnElement, Row, Table, and_, case, distinct, func, or_, select

from activities.store import JourneyRefusal, JourneyRun, JourneyStepRow, OutboxMessage, Store
from starter import stats
from starter.engagement import COMPLAINT_LIMIT, journey_engagement
from starter.experiment_report import ExperimentResult, Interval, experiment_results
from starter.programme import (
    ProgrammeReport,
    ThrottleFigures,
    not_global,
    programme_lines,
    programme_report,
    throttle_figures,
    throttle_line,
)
from starter.timing_report import SendTimes, TimedConversions, send_times
from workflows.errors import UnknownJourneyError
from workflows.identity import user_key
from workflows.journey import ANY_EVENT, Goal, Journey, human_duration

RUNS: Table = JourneyRun.__table__  # type: ignore[attr-defined]
STEPS: Table = JourneyStepRow.__table__  # type: ignore[attr-defined]
OUTBOX: Table = OutboxMessage.__table__  # type: ignore[attr-defined]
REFUSALS: Table = JourneyRefusal.__table__  # type: ignore[attr-defined]
QUIET_HOURS_PREFIX = "quiet hours before "
SEND_RATE_PREFIX = "send rate before "
"""The two labels of a deferred wait (both of kind quiet_hours). Older runs labelled send-rate
waits as quiet hours too, so the report counts both labels together and takes the send-rate
waits from their own table (send_waits)."""
REACHED = ("sent", "unknown", "held_out", "skipped", "failed")
LEFT_OUT = ("suppressed", "failed")
"""Outcomes that take an entry out of both groups: not a user the journey is for, or a broken
definition. An exit for a reason found after entry ("exited") stays in: leaving those out of
one group only would unbalance the test."""
GROUPS = ("treatment", "holdout")


class Conversions(BaseModel):
    """Entries and the conversions among them."""

    entries: int = 0
    converted: int = 0
    rate: float | None = None


class GroupResult(Conversions):
    """One arm of the test, counted in entries (a user who re-entered counts once per entry)."""

    users: int = 0
    """Distinct users behind `entries`."""
    revenue: float = 0.0
    revenue_per_entry: float | None = None
    in_window: int = 0
    """Entered and still inside the attribution window: may yet convert."""
    early_converted: int | None = None
    """Converted within the goal's early window (None: the journey has none)."""
    early_rate: float | None = None
    """`early_converted` over the entries whose goal has an early window (all, unless entry
    paths' goals differ)."""
    median_time_to_convert: timedelta | None = None
    """From entry to goal, over the converted entries."""


class EntryPath(BaseModel):
    """The entries that came in by one event ("Segment Entered" for a segment run): paths
    into one journey may differ in who enters and what their goal is."""

    entry_event: str | None
    goal: str | None = None
    """The path's goal, where the journey's goal depends on the entry (win-back)."""
    treatment: Conversions = Conversions()
    holdout: Conversions = Conversions()


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
    deferred_throttle: int = 0
    """Waits for a slot under the journey's `send_rate` (activities/throttle.py)."""
    """Held until the user's quiet hours ended (then sent, skipped or ended by the goal)."""
    conversions_after_treatment: int = 0
    """Treatment entries that reached this step and converted after it."""
    conversions_after_holdout: int = 0
    delivered: int = 0
    """Sent (or unconfirmed) less hard bounces: what reached a mailbox as far as we know."""
    channels: dict[str, int] = {}
    """Messages sent (or unconfirmed) by the channel they went by: with a choice of channels
    (`send(..., channel=("push", "email"))`), how the step's sends split."""
    opened: int = 0
    """Messages opened at least once: approximate (Apple Mail Privacy Protection loads every
    image, so opens it; clients that block images never do)."""
    clicked: int = 0
    """Messages with at least one link followed (starter/engagement.py for all of these)."""
    unsubscribed: int = 0
    bounced: int = 0
    """Hard bounces the ESP reported: the address is suppressed for every journey."""
    soft_bounced: int = 0
    complained: int = 0
    click_conversions: int = 0
    """Treatment entries whose goal came within the attribution window after a click on this
    step's email; `click_revenue` their revenue. Attribution, not lift."""
    click_revenue: float = 0.0


class JourneyReport(BaseModel):
    journey: str
    attribution_window: str | None = None
    early_window: str | None = None
    """The goal's shorter window (seed 003: 24 h for cart recovery, 7 d for re-engagement)."""
    holdout_share: float | None = None
    entries: int = 0
    """Entries in the test (both groups): suppressed and failed ones are not."""
    suppressed: int = 0
    """Entries found at entry not to be ones the journey is for: in neither group."""
    failed: int = 0
    """Entries stopped by an error in the journey's definition: in neither group."""
    refused: int = 0
    """Triggers refused inside the re-entry window (by refusal time under `since`): no entry,
    in neither group."""
    refused_by_reason: dict[str, int] = {}
    treatment: GroupResult = GroupResult()
    holdout: GroupResult = GroupResult()
    absolute_lift: float | None = None
    absolute_lift_ci: Interval | None = None
    relative_lift: float | None = None
    relative_lift_ci: Interval | None = None
    p_value: float | None = None
    significant: bool = False
    """The 95 % interval of the absolute lift excludes zero and the groups are large enough."""
    early_absolute_lift: float | None = None
    """The lift in conversion within the early window."""
    early_absolute_lift_ci: Interval | None = None
    incremental_revenue: float | None = None
    incremental_revenue_ci: Interval | None = None
    warning: str | None = None
    exits: dict[str, int] = {}
    """How entries ended, as outcome or outcome:reason (suppressed:low_cart_value, ...)."""
    by_entry: list[EntryPath] = []
    """Entries and conversions per entry event, most entries first."""
    steps: list[StepResult] = []
    experiments: list[ExperimentResult] = []
    """Each A/B/n test's variants against the holdout and the baseline, and any winner."""
    send_times: SendTimes | None = None
    """Sends timed by send-time optimisation: by hour, and learned against default hours."""
    globally_held_out: int = 0
    """Entries of users the programme's global holdout holds out: counted in the programme
    (Report.programme), not in this journey's own test."""
    send_rate: str | None = None
    priority: int | None = None
    throttled: ThrottleFigures | None = None
    """Sends that waited for their slot under `send_rate`."""
    emails_delivered: int = 0
    complained: int = 0
    complaint_rate: float | None = None
    """Complaints over delivered emails; Gmail and Yahoo hold bulk senders under 0.3 %
    (COMPLAINT_LIMIT)."""
    click_conversions: int = 0
    """Treatment entries whose goal came within the attribution window after a click on any of
    the journey's emails (each once), and their revenue: beside the lift, never instead of it."""
    click_revenue: float = 0.0


class Report(BaseModel):
    generated_at: datetime
    since: datetime | None = None
    programme: ProgrammeReport | None = None
    """Every journey together against the global holdout (starter/programme.py); None when
    there is none, or for one journey's report."""
    journeys: list[JourneyReport]


def build_report(
    store: Store,
    journeys: list[type[Journey]] | None = None,
    *,
    journey: str | None = None,
    since: datetime | None = None,
    global_holdout: float | None = None,
) -> Report:
    """The report for every journey with entries (and every loaded one), or just `journey`;
    the programme against the global holdout (JOURNEYS_GLOBAL_HOLDOUT is `global_holdout`)
    first, for every journey's.

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
    programme = programme_report(store, classes, since, global_holdout) if journey is None else None
    return Report(
        generated_at=datetime.now(UTC), since=since, programme=programme, journeys=results
    )


def _journeys_with_runs(store: Store) -> list[str]:
    query = select(RUNS.c.journey).distinct()
    with store.engine.connect() as conn:
        return sorted(conn.execute(query).scalars())


@dataclass
class _Arm:
    """One group's sums while the report adds up its entry paths."""

    entries: int = 0
    converted: int = 0
    revenue: float = 0.0
    squares: float = 0.0
    open: int = 0
    early_entries: int = 0
    early_converted: int = 0
    times: list[timedelta] = field(default_factory=list)

    def result(self, users: int, early: bool) -> GroupResult:
        return GroupResult(
            entries=self.entries,
            users=users,
            converted=self.converted,
            rate=stats.rate(self.converted, self.entries),
            revenue=round(self.revenue, 2),
            revenue_per_entry=self.revenue / self.entries if self.entries else None,
            in_window=self.open,
            early_converted=self.early_converted if early else None,
            early_rate=stats.rate(self.early_converted, self.early_entries) if early else None,
            # typeshed allows numbers only; median needs sorting, + and / 2, which timedelta has
            median_time_to_convert=statistics.median(self.times)  # type: ignore[type-var]
            if self.times
            else None,
        )


@dataclass
class _Rows:
    """What the report reads of one journey, in one connection."""

    paths: list[Row[*tuple[Any, ...]]]
    """(group, entry event, entries, conversions, revenue, revenue squared, still open)"""
    users: dict[str, int]
    conversions: list[Row[*tuple[Any, ...]]]
    """(group, entry event, entered at, goal at), one per converted entry."""
    exits: list[Row[*tuple[Any, ...]]]
    refusals: list[Row[*tuple[Any, ...]]]


def _read(store: Store, name: str, since: datetime | None) -> _Rows:
    runs, refusals = RUNS.c, REFUSALS.c
    where: list[ColumnElement[bool]] = [runs.journey == name, not_global()]
    refused_where: list[ColumnElement[bool]] = [refusals.journey == name]
    if since is not None:
        where.append(runs.entered_at >= since)
        refused_where.append(refusals.at >= since)
    counted = or_(runs.outcome.is_(None), runs.outcome.not_in(LEFT_OUT))
    converted = runs.outcome == "converted"
    revenue = func.coalesce(case((converted, runs.revenue), else_=0.0), 0.0)
    paths = (
        select(
            runs.group,
            runs.entry_event,
            func.count(),
            func.sum(case((converted, 1), else_=0)),
            func.coalesce(func.sum(revenue), 0.0),
            func.coalesce(func.sum(revenue * revenue), 0.0),
            func.sum(case((runs.outcome.is_(None), 1), else_=0)),
        )
        .where(*where, counted)
        .group_by(runs.group, runs.entry_event)
    )
    users = (
        select(runs.group, func.count(distinct(runs.user_id)))
        .where(*where, counted)
        .group_by(runs.group)
    )
    conversions = select(runs.group, runs.entry_event, runs.entered_at, runs.goal_at).where(
        *where, converted, runs.goal_at.is_not(None)
    )
    exits = (
        select(runs.outcome, runs.outcome_reason, func.count())
        .where(*where, runs.outcome.is_not(None))
        .group_by(runs.outcome, runs.outcome_reason)
    )
    refused = select(refusals.reason, func.count()).where(*refused_where).group_by(refusals.reason)
    with store.engine.connect() as conn:
        return _Rows(
            paths=list(conn.execute(paths)),
            users={group: int(n) for group, n in conn.execute(users)},
            conversions=list(conn.execute(conversions)),
            exits=list(conn.execute(exits)),
            refusals=list(conn.execute(refused)),
        )


def _journey_report(
    store: Store, name: str, cls: type[Journey] | None, since: datetime | None
) -> JourneyReport:
    rows = _read(store, name, since)
    report = JourneyReport(journey=name)
    early_windows: list[timedelta] = []
    if cls is not None:
        report.holdout_share = cls.holdout
        if cls.goal is not None:
            report.attribution_window = human_duration(cls.goal.within)
        early_windows = sorted({g.early for g in cls.goals() if g.early is not None})
        if early_windows:
            report.early_window = " / ".join(human_duration(w) for w in early_windows)

    def goal_of(entry: str | None) -> Goal | None:
        """The goal of the path `entry`: win-back's differ by the way in."""
        return cls.goal_for(entry) if cls is not None else None

    arms = {group: _Arm() for group in GROUPS}
    by_entry: dict[str | None, EntryPath] = {}
    for group, entry, count, conv, total, squares, open_runs in rows.paths:
        if group not in arms:
            continue
        count, conv = int(count), int(conv or 0)
        arm = arms[group]
        arm.entries += count
        arm.converted += conv
        arm.revenue += float(total or 0)
        arm.squares += float(squares or 0)
        arm.open += int(open_runs or 0)
        goal = goal_of(entry)
        if goal is not None and goal.early is not None:
            arm.early_entries += count
        if entry not in by_entry:
            own = cls is not None and goal is not None and goal is not cls.goal
            by_entry[entry] = EntryPath(entry_event=entry, goal=_goal_text(goal) if own else None)
        counts = Conversions(entries=count, converted=conv, rate=stats.rate(conv, count))
        setattr(by_entry[entry], group, counts)
    for group, entry, entered_at, goal_at in rows.conversions:
        if group not in arms:
            continue
        took = _utc(goal_at) - _utc(entered_at)
        arms[group].times.append(took)
        goal = goal_of(entry)
        if goal is not None and goal.early is not None and took <= goal.early:
            arms[group].early_converted += 1

    t_arm, h_arm = arms["treatment"], arms["holdout"]
    early = bool(early_windows)
    t = report.treatment = t_arm.result(rows.users.get("treatment", 0), early)
    h = report.holdout = h_arm.result(rows.users.get("holdout", 0), early)
    report.entries = t.entries + h.entries
    lift = stats.lift(t.converted, t.entries, h.converted, h.entries)
    report.absolute_lift, report.relative_lift = lift.absolute, lift.relative
    report.absolute_lift_ci = _interval(lift.absolute_ci)
    report.relative_lift_ci = _interval(lift.relative_ci)
    report.p_value = lift.p_value
    if early:
        early_lift = stats.lift(
            t_arm.early_converted, t_arm.early_entries, h_arm.early_converted, h_arm.early_entries
        )
        report.early_absolute_lift = early_lift.absolute
        report.early_absolute_lift_ci = _interval(early_lift.absolute_ci)
    money = stats.revenue(
        t_arm.revenue, t_arm.squares, t.entries, h_arm.revenue, h_arm.squares, h.entries
    )
    report.incremental_revenue = money.incremental
    report.incremental_revenue_ci = _interval(money.incremental_ci)
    report.warning = stats.too_small(t.converted, t.entries, h.converted, h.entries)
    report.significant = (
        report.warning is None
        and lift.absolute_ci is not None
        and not lift.absolute_ci.contains(0.0)
    )

    for outcome, reason, count in rows.exits:
        key = outcome if not reason or outcome == "converted" else f"{outcome}:{reason}"
        report.exits[key] = report.exits.get(key, 0) + int(count)
        if outcome == "suppressed":
            report.suppressed += int(count)
        elif outcome == "failed":
            report.failed += int(count)
    for reason, count in rows.refusals:
        report.refused_by_reason[reason] = report.refused_by_reason.get(reason, 0) + int(count)
    report.refused = sum(report.refused_by_reason.values())
    report.by_entry = sorted(
        by_entry.values(),
        key=lambda p: (-(p.treatment.entries + p.holdout.entries), p.entry_event or ""),
    )
    report.steps = _steps(store, name, since)
    report.globally_held_out = _globally_held_out(store, name, since)
    if cls is not None:
        report.send_rate = repr(cls.send_rate) if cls.send_rate is not None else None
        report.priority = cls.priority
    report.throttled = throttle_figures(store, name, since)
    for step in report.steps:  # every deferred wait is recorded with kind quiet_hours
        step.deferred_throttle = report.throttled.by_step.get(step.step, 0)
        step.deferred_quiet_hours = max(0, step.deferred_quiet_hours - step.deferred_throttle)
    report.experiments = experiment_results(store, name, cls, since, h.entries, h.converted)
    report.send_times = send_times(store, name)
    _add_engagement(report, store, cls, since)
    return report


def _add_engagement(
    report: JourneyReport, store: Store, cls: type[Journey] | None, since: datetime | None
) -> None:
    """Each step's opens, clicks, bounces, complaints, unsubscribes and click revenue, and the
    journey's complaint rate (starter/engagement.py)."""
    window = cls.goal.within if cls is not None and cls.goal is not None else None
    found = journey_engagement(store, report.journey, since, window)
    for step in report.steps:
        counts = found.steps.get(step.step)
        if counts is None:
            step.delivered = step.sent + step.unconfirmed
            continue
        c = counts.counts
        step.opened, step.clicked, step.unsubscribed = c["open"], c["click"], c["unsubscribe"]
        step.bounced, step.soft_bounced, step.complained = (
            c["bounce"], c["soft_bounce"], c["complaint"]
        )  # fmt: skip
        step.delivered = max(0, step.sent + step.unconfirmed - step.bounced)
        step.click_conversions = counts.click_conversions
        step.click_revenue = round(counts.click_revenue, 2)
    report.emails_delivered = found.emails_delivered
    report.complained = found.totals["complaint"]
    report.complaint_rate = found.complaint_rate
    report.click_conversions = found.click_conversions
    report.click_revenue = found.click_revenue


def _globally_held_out(store: Store, name: str, since: datetime | None) -> int:
    """Entries the global holdout took out of this journey's own test."""
    query = select(func.count()).where(RUNS.c.journey == name, ~not_global())
    if since is not None:
        query = query.where(RUNS.c.entered_at >= since)
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def _goal_text(goal: Goal | None) -> str | None:
    """ "Subscription Started within 90d", for a path whose goal is not the journey's."""
    if goal is None:
        return None
    events = " or ".join("any event" if e == ANY_EVENT else e for e in goal.events)
    return f"{events} within {human_duration(goal.within)}"


def _utc(when: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were written in UTC."""
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _steps(store: Store, name: str, since: datetime | None) -> list[StepResult]:
    runs, steps = RUNS.c, STEPS.c
    where = [runs.journey == name, steps.kind.in_(("send", "quiet_hours")), not_global()]
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
            deferred[step.removeprefix(QUIET_HOURS_PREFIX).removeprefix(SEND_RATE_PREFIX)] += count
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
    for step, channel, count in _channels(store, name, since):
        if step in results:
            results[step].channels[channel] = int(count)
    return sorted(results.values(), key=lambda r: (order[r.step], r.step))


def _channels(store: Store, name: str, since: datetime | None) -> list[Any]:
    """(step, channel, messages) of the journey's sent and unconfirmed messages."""
    outbox, runs = OUTBOX.c, RUNS.c
    where = [outbox.journey == name, outbox.status.in_(("sent", "unknown")), not_global()]
    if since is not None:
        where.append(runs.entered_at >= since)
    query = (
        select(outbox.template, outbox.channel, func.count())
        .select_from(OUTBOX.join(RUNS, runs.run_id == outbox.run_id))
        .where(*where)
        .group_by(outbox.template, outbox.channel)
    )
    with store.engine.connect() as conn:
        return list(conn.execute(query))


def _interval(interval: stats.Interval | None) -> Interval | None:
    return Interval(low=interval.low, high=interval.high) if interval is not None else None


# Text -------------------------------------------------------------------------------------------


def render_text(report: Report) -> str:
    """The report as a readable table, one block per journey."""
    out: list[str] = []
    if report.since is not None:
        out.append(f"Entries since {report.since:%Y-%m-%d %H:%M} UTC")
    if report.programme is not None:
        out += programme_lines(report.programme, percent, points, money, _ci, p_phrase)
    if not report.journeys:
        out.append("No journeys loaded and no entries recorded yet.")
    for j in report.journeys:
        out.append("")
        window = f", attribution window {j.attribution_window}" if j.attribution_window else ""
        if j.early_window:
            window += f", early window {j.early_window}"
        out.append(f"{j.journey}: {j.entries} entries{window}")
        early = j.early_window is not None
        head = f"  {'group':<10} {'entries':>8} {'users':>8} {'converted':>10} {'rate':>8}"
        head += f" {'revenue/entry':>14}"
        out.append(head + (f" {'early conv.':>12} {'early rate':>11}" if early else ""))
        for label, g in (("treatment", j.treatment), ("holdout", j.holdout)):
            row = (
                f"  {label:<10} {g.entries:>8} {g.users:>8} {g.converted:>10} "
                f"{percent(g.rate):>8} {money(g.revenue_per_entry):>14}"
            )
            if early:
                row += f" {g.early_converted or 0:>12} {percent(g.early_rate):>11}"
            out.append(row)
        open_runs = j.treatment.in_window + j.holdout.in_window
        if open_runs:
            out.append(f"  {open_runs} still inside their attribution window")
        relative = _ci(j.relative_lift_ci, signed_percent)
        out.append(
            f"  lift: {points(j.absolute_lift)} ({_ci(j.absolute_lift_ci, points)}), "
            f"relative {signed_percent(j.relative_lift)} ({relative}), "
            f"p {p_phrase(j.p_value)}{'  significant' if j.significant else ''}"
        )
        if early:
            out.append(
                f"  lift within {j.early_window}: {points(j.early_absolute_lift)} "
                f"({_ci(j.early_absolute_lift_ci, points)})"
            )
        if j.treatment.median_time_to_convert or j.holdout.median_time_to_convert:
            out.append(
                "  median time to convert: "
                f"treatment {_duration(j.treatment.median_time_to_convert)}, "
                f"holdout {_duration(j.holdout.median_time_to_convert)}"
            )
        out.append(
            f"  incremental revenue: {money(j.incremental_revenue)} "
            f"({_ci(j.incremental_revenue_ci, money)})"
        )
        if j.warning:
            out.append(f"  ! {j.warning}")
        for path in j.by_entry:
            goal = f"; goal {path.goal}" if path.goal else ""
            out.append(
                f"  entered by {path.entry_event or 'unknown'}: "
                f"treatment {_share(path.treatment)}, holdout {_share(path.holdout)}{goal}"
            )
        left_out = outside_groups(j)
        if left_out:
            out.append(f"  in neither group: {left_out}")
        if j.globally_held_out:
            out.append(
                f"  globally held out (in the programme, not this test): {j.globally_held_out}"
            )
        if throttled := throttle_line(j.send_rate, j.throttled):
            out.append(throttled)
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
                if s.deferred_throttle:
                    reasons["waited for the send rate"] = s.deferred_throttle
                if s.unconfirmed:
                    reasons["unconfirmed"] = s.unconfirmed
                conv = f"{s.conversions_after_treatment}/{s.conversions_after_holdout}"
                out.append(
                    f"  {s.step[:24]:<24} {s.sent:>6} {s.held_out:>9} "
                    f"{sum(s.skipped.values()):>8} {sum(s.failed.values()):>7} {conv:>18}  "
                    + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items()))
                )
        if any(set(s.channels) - {"email"} for s in j.steps):
            out.append(
                "  sent by channel: "
                + "; ".join(
                    f"{s.step} " + ", ".join(f"{c} {n}" for c, n in sorted(s.channels.items()))
                    for s in j.steps
                    if s.channels
                )
            )
        out.extend(_engagement_lines(j))
        for e in j.experiments:
            out.extend(_experiment_lines(e))
        if j.send_times is not None:
            t = j.send_times
            hours = ", ".join(f"{h:02d}h {n}" for h, n in t.by_hour.items())
            out.append(f"  timed sends by local hour: {hours}")
            out.append(
                f"  entries timed at their own best hour: {_share(t.learned)}; "
                f"at the default hour: {_share(t.default)}"
            )
    return "\n".join(line.rstrip() for line in out).lstrip("\n") + "\n"


def _engagement_lines(j: JourneyReport) -> list[str]:
    """What the emails met after sending, per step, and the complaint rate; none without."""
    engaged = [s for s in j.steps if s.opened or s.clicked or s.bounced or s.soft_bounced
               or s.complained or s.unsubscribed]  # fmt: skip
    if not engaged and not j.emails_delivered:
        return []
    lines = [
        f"  {'engagement':<24} {'delivered':>9} {'opened~':>8} {'clicked':>8} {'unsub.':>7} "
        f"{'bounced':>8} {'soft':>5} {'complaints':>10} {'click revenue':>14}"
    ]
    for s in j.steps:
        lines.append(
            f"  {s.step[:24]:<24} {s.delivered:>9} {s.opened:>8} {s.clicked:>8} "
            f"{s.unsubscribed:>7} {s.bounced:>8} {s.soft_bounced:>5} {s.complained:>10} "
            f"{money(s.click_revenue) if s.click_conversions else '-':>14}"
        )
    if j.complaint_rate is not None:
        limit = j.complaint_rate >= COMPLAINT_LIMIT
        over = "  OVER the 0.3% Gmail and Yahoo enforce" if limit else ""
        lines.append(
            f"  complaint rate: {percent(j.complaint_rate)} of {j.emails_delivered} delivered "
            f"emails (limit {percent(COMPLAINT_LIMIT)}){over}"
        )
    if j.click_conversions:
        window = f" within {j.attribution_window}" if j.attribution_window else ""
        lines.append(
            f"  revenue after a click{window}: {money(j.click_revenue)} from "
            f"{j.click_conversions} treatment entries (attribution, not lift; opens~ approximate)"
        )
    return lines


def _experiment_lines(e: ExperimentResult) -> list[str]:
    auto = f", automatic winner at alpha {e.alpha:g}" if e.auto_winner and e.alpha else ""
    lines = [
        f"  experiment {e.experiment} (baseline {e.baseline}{auto})",
        f"    {'variant':<14} {'entries':>8} {'sent':>6} {'converted':>10} {'rate':>8} "
        f"{'rev./entry':>11} {'vs holdout':>24} {'vs baseline':>24} {'seq. p':>8}",
    ]
    for v in e.variants:
        vs_h = f"{points(v.lift_vs_holdout)} ({_ci(v.lift_vs_holdout_ci, points)})"
        vs_b = "-"
        if v.variant != e.baseline:
            vs_b = f"{points(v.lift_vs_baseline)} ({_ci(v.lift_vs_baseline_ci, points)})"
        lines.append(
            f"    {v.variant[:14]:<14} {v.entries:>8} {v.sent:>6} {v.converted:>10} "
            f"{percent(v.rate):>8} {money(v.revenue_per_entry):>11} {vs_h:>24} {vs_b:>24} "
            f"{p_text(v.always_valid_p) if v.always_valid_p is not None else '-':>8}"
        )
    if e.decision is not None:
        d = e.decision
        lines.append(
            f"    winner: {d.winner}, decided {d.decided_at:%Y-%m-%d %H:%M} UTC "
            f"(p {d.p_value:.4f}); new entries get it"
        )
    elif e.auto_winner:
        lines.append("    no winner yet")
    return lines


def outside_groups(j: JourneyReport) -> str:
    """ "3 suppressed, 1 failed, 12 triggers refused (reentry_window 12)", or "" for none."""
    parts = [f"{n} {what}" for n, what in ((j.suppressed, "suppressed"), (j.failed, "failed")) if n]
    if j.refused:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(j.refused_by_reason.items()))
        parts.append(
            f"{j.refused} {'trigger' if j.refused == 1 else 'triggers'} refused ({reasons})"
        )
    return ", ".join(parts)


def _share(c: Conversions | TimedConversions) -> str:
    return f"{c.converted}/{c.entries} {percent(c.rate)}"


def _duration(value: timedelta | None) -> str:
    return "-" if value is None else human_duration(value)


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
