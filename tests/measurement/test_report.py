"""`journeys report` on runs a real journey recorded (groups, lift, revenue, steps, the CLI),
and on rows written straight into the store where a state must be exact: entries left out of
both groups, refused triggers, early windows and times to convert, entry paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from activities.holdout import assign_group
from activities.sending import DeliveryPolicy, SendingActivities
from activities.store import JourneyRefusal, JourneyRun, Store
from starter.report import Conversions, EntryPath, JourneyReport, build_report, render_text
from tests.measurement.journeys import STAFF_TRAIT, ComeBack, Measured
from workflows.errors import UnknownJourneyError

ROOT = Path(__file__).resolve().parents[2]
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
J = Measured.name

pytestmark = pytest.mark.both_databases


def row(text: str, first: str) -> list[str]:
    """The words of the text report's first line that starts with `first`."""
    return next(line.split() for line in text.splitlines() if line.split()[:1] == [first])


def users_in(stack, group: str, count: int, **traits) -> list[str]:
    found: list[str] = []
    while len(found) < count:
        user = stack.user(**traits)
        if assign_group(J, user, Measured.holdout) == group:
            found.append(user)
    return found


async def run_the_cohort(stack) -> None:
    """Four treated and three held-out users, each ending a different way, and a staff account
    the journey is not for (suppressed at entry: in neither group)."""
    t_early, t_late, t_never = users_in(stack, "treatment", 3)
    [t_unsubscribed] = users_in(stack, "treatment", 1, unsubscribed=True)
    h_buyer, h_never, h_open = users_in(stack, "holdout", 3)
    [staff] = users_in(stack, "treatment", 1, **{STAFF_TRAIT: True})
    for user in (t_early, t_late, t_never, t_unsubscribed, h_buyer, h_never, h_open, staff):
        await stack.track("Trial Started", user)
    assert (await stack.result(J, staff)).outcome == "suppressed"

    await stack.advance(J, t_early, 2 * HOUR)  # bought after the nudge, before the reminder
    await stack.track("Order Completed", t_early, {"revenue": 30})
    await stack.advance(J, t_late, DAY + 12 * HOUR)  # after the reminder (skipped by the cap)
    await stack.track("Order Completed", t_late, {"total": "19.5"})
    await stack.advance(J, h_buyer, 12 * HOUR)
    await stack.track("Order Completed", h_buyer, {"value": 40})
    for user in (t_never, t_unsubscribed, h_never):
        await stack.advance(J, user, 8 * DAY)  # the window closes without a purchase
    for user in (t_early, t_late, h_buyer, t_never, t_unsubscribed, h_never):
        await stack.result(J, user)
    # h_open is still inside its window: it counts in the holdout's entries, not as converted.


@pytest.fixture
async def cohort(stack_for, store):
    policy = DeliveryPolicy(quiet_hours=None, frequency_cap=1)  # the reminder hits the cap
    stack = await stack_for(Measured, sending=SendingActivities(store, policy=policy))
    await run_the_cohort(stack)
    return stack


async def test_the_report_counts_groups_conversions_revenue_lift_and_steps(cohort, store):
    [report] = build_report(store, [Measured], journey=J).journeys
    assert (report.entries, report.attribution_window, report.holdout_share) == (7, "7d", 0.5)
    assert (report.early_window, report.suppressed, report.failed, report.refused) == (
        "1d",
        1,
        0,
        0,
    )
    t, h = report.treatment, report.holdout
    assert (t.entries, t.users, t.converted, t.revenue, t.in_window) == (4, 4, 2, 49.5, 0)
    assert (h.entries, h.users, h.converted, h.revenue, h.in_window) == (3, 3, 1, 40.0, 1)
    assert t.rate == 0.5 and h.rate == pytest.approx(1 / 3)
    assert report.absolute_lift == pytest.approx(0.5 - 1 / 3)
    assert report.incremental_revenue == pytest.approx((49.5 / 4 - 40 / 3) * 4)
    assert report.warning is not None and "too small" in report.warning
    assert report.significant is False
    assert report.exits == {"converted": 3, "completed": 3, "suppressed:staff_account": 1}
    # Within a day: t_early (2 h) and h_buyer (12 h); t_late bought after a day and a half.
    assert (t.early_converted, h.early_converted) == (1, 1)
    assert (t.early_rate, h.early_rate) == (0.25, pytest.approx(1 / 3))
    # Each clock moved by exactly the wait, plus the real seconds the test took meanwhile.
    assert t.median_time_to_convert is not None and h.median_time_to_convert is not None
    assert timedelta(hours=19) <= t.median_time_to_convert < timedelta(hours=19, minutes=5)
    assert timedelta(hours=12) <= h.median_time_to_convert < timedelta(hours=12, minutes=5)
    assert report.by_entry == [
        EntryPath(
            entry_event="Trial Started",
            treatment=Conversions(entries=4, converted=2, rate=0.5),
            holdout=Conversions(entries=3, converted=1, rate=1 / 3),
        )
    ]

    # Each step: sends, holdouts, skips by reason, and who converted after it.
    nudge, reminder = report.steps
    assert nudge.step == "nudge" and reminder.step == "reminder"
    assert (nudge.sent, nudge.held_out, nudge.skipped) == (3, 3, {"unsubscribed": 1})
    assert (nudge.conversions_after_treatment, nudge.conversions_after_holdout) == (2, 1)
    # The early buyer left before the reminder; the held-out buyer too; h_open is not there yet.
    assert reminder.sent == 0 and reminder.held_out == 1
    assert reminder.skipped == {"frequency_cap": 2, "unsubscribed": 1}
    assert (reminder.conversions_after_treatment, reminder.conversions_after_holdout) == (1, 0)

    text = render_text(build_report(store, [Measured], journey=J))
    assert f"{J}: 7 entries, attribution window 7d, early window 1d" in text
    assert row(text, "group") == [
        *("group", "entries", "users", "converted", "rate", "revenue/entry"),
        *("early", "conv.", "early", "rate"),
    ]
    assert row(text, "treatment") == ["treatment", "4", "4", "2", "50.00%", "12.38", "1", "25.00%"]
    assert "lift: +16.67 pts (95% CI" in text
    assert "lift within 1d: -8.33 pts (95% CI" in text
    assert "! too small to tell: each group needs at least 100 entries" in text
    assert "entered by Trial Started: treatment 2/4 50.00%, holdout 1/3 33.33%" in text
    assert "in neither group: 1 suppressed\n" in text
    assert "frequency_cap 2, unsubscribed 1" in text

    later = build_report(store, [Measured], since=datetime.now(UTC) + HOUR).journeys
    assert [(j.journey, j.entries, j.suppressed) for j in later] == [(J, 0, 0)]  # --since
    assert later[0].warning is not None


def test_an_unknown_journey_is_named_with_the_known_ones(store):
    with pytest.raises(UnknownJourneyError, match=r"unknown journey 'nope'.*t_measured"):
        build_report(store, [Measured], journey="nope")


async def test_the_report_command_prints_json_and_text(cohort, store):
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "JOURNEYS_DATABASE_URL": store.url,
        "JOURNEYS_JOURNEY_MODULES": '["tests.measurement.journeys"]',
    }
    cmd = [sys.executable, "-m", "starter.cli", "report"]
    done = subprocess.run([*cmd, J, "--json"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    [journey] = data["journeys"]
    assert journey["treatment"]["converted"] == 2 and journey["holdout"]["entries"] == 3
    assert (journey["entries"], journey["suppressed"], journey["refused"]) == (7, 1, 0)
    assert journey["treatment"]["early_converted"] == 1 and journey["early_window"] == "1d"
    assert journey["treatment"]["median_time_to_convert"].startswith("PT19H")  # ISO 8601
    assert journey["by_entry"][0]["entry_event"] == "Trial Started"
    assert journey["absolute_lift_ci"]["low"] < journey["absolute_lift"]
    assert "size" not in journey["treatment"] and "entered" not in journey

    text = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert text.returncode == 0 and f"{J}: 7 entries" in text.stdout

    unknown = subprocess.run([*cmd, "nope"], env=env, capture_output=True, text=True)
    assert unknown.returncode == 2 and "unknown journey 'nope'" in unknown.stderr


# Report states set up exactly: rows written straight into the store ---------------------------

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def entry(
    store: Store,
    group: str,
    outcome: str | None = "completed",
    *,
    reason: str | None = None,
    user: str | None = None,
    journey: str = J,
    entry_event: str = "Trial Started",
    entered_at: datetime = T0,
    took: timedelta | None = None,
    revenue: float | None = None,
) -> None:
    """One journey_runs row; `took` (entry to goal) makes it a conversion."""
    run_id = f"run-{uuid.uuid4().hex[:12]}"
    user = user or f"user-{uuid.uuid4().hex[:8]}"
    if took is not None:
        outcome, reason = "converted", "Order Completed"
    assert store.insert_once(
        JourneyRun(
            run_id=run_id,
            workflow_id=f"{journey}:{user}",
            journey=journey,
            user_id=user,
            group=group,
            entered_at=entered_at,
            entry_event=entry_event,
            step="done" if outcome else "nudge",
            outcome=outcome,
            outcome_reason=reason,
            outcome_at=entered_at + (took or DAY) if outcome else None,
            goal_at=entered_at + took if took is not None else None,
            revenue=revenue,
        )
    )


def refusal(store: Store, reason: str, *, journey: str = J, at: datetime = T0 + DAY) -> None:
    user = f"user-{uuid.uuid4().hex[:8]}"
    assert store.insert_once(
        JourneyRefusal(
            run_id=f"run-{uuid.uuid4().hex[:12]}",
            workflow_id=f"{journey}:{user}",
            journey=journey,
            user_id=user,
            at=at,
            reason=reason,
            entry_event="Trial Started",
            last_entered_at=at - DAY,
        )
    )


def only(store: Store, journey: type = Measured, **options) -> JourneyReport:
    [report] = build_report(store, [journey], journey=journey.name, **options).journeys
    return report


def test_suppressed_and_failed_entries_are_in_neither_group(store):
    # Treatment: five entries of four users (one re-entered), two bought; held out: four, one.
    entry(store, "treatment", took=2 * HOUR, revenue=30.0, user="again")
    entry(store, "treatment", user="again", entered_at=T0 + 40 * DAY)
    entry(store, "treatment", took=3 * DAY, revenue=10.0)
    entry(store, "treatment", "exited", reason="goal_after_window")
    entry(store, "treatment", None)  # still inside its window
    entry(store, "holdout", took=5 * HOUR, revenue=20.0)
    entry(store, "holdout")
    entry(store, "holdout")
    entry(store, "holdout", "exited", reason="negative_support_experience")  # found later: in
    # Not users the journey is for, or a broken definition: in neither group, whatever they did.
    for group in ("treatment", "treatment", "treatment", "holdout", "holdout"):
        entry(store, group, "suppressed", reason="staff_account", revenue=500.0)
    for group in ("treatment", "holdout"):
        entry(store, group, "failed", reason="TemplateNotFound: nudge")

    report = only(store)
    t, h = report.treatment, report.holdout
    assert (t.entries, t.users, t.converted, t.revenue, t.in_window) == (5, 4, 2, 40.0, 1)
    assert (h.entries, h.users, h.converted, h.revenue, h.in_window) == (4, 4, 1, 20.0, 0)
    assert (t.rate, h.rate) == (0.4, 0.25)
    assert (t.revenue_per_entry, h.revenue_per_entry) == (8.0, 5.0)
    assert (report.entries, report.suppressed, report.failed) == (9, 5, 2)
    assert report.absolute_lift == pytest.approx(0.15)
    assert report.incremental_revenue == pytest.approx((8.0 - 5.0) * 5)
    assert (t.early_converted, h.early_converted) == (1, 1)  # 2 h and 5 h; 3 days is not early
    assert (t.early_rate, h.early_rate) == (0.2, 0.25)
    assert report.exits == {
        "converted": 3,
        "completed": 3,
        "exited:goal_after_window": 1,
        "exited:negative_support_experience": 1,
        "suppressed:staff_account": 5,
        "failed:TemplateNotFound: nudge": 2,
    }
    text = render_text(build_report(store, [Measured], journey=J))
    assert f"{J}: 9 entries, attribution window 7d, early window 1d" in text
    assert row(text, "treatment")[:6] == ["treatment", "5", "4", "2", "40.00%", "8.00"]
    assert row(text, "holdout")[:6] == ["holdout", "4", "4", "1", "25.00%", "5.00"]
    assert "in neither group: 5 suppressed, 2 failed\n" in text


def test_refused_triggers_are_counted_by_reason_and_in_no_group(store):
    entry(store, "treatment", took=HOUR, revenue=12.0)
    entry(store, "holdout")
    for reason in ("reentry_window", "reentry_window", "reentry_window", "paused"):
        refusal(store, reason)
    refusal(store, "reentry_window", at=T0 - DAY)  # before --since below
    refusal(store, "reentry_window", journey=ComeBack.name)  # another journey's

    report = only(store)
    assert (report.refused, report.refused_by_reason) == (5, {"reentry_window": 4, "paused": 1})
    assert (report.entries, report.treatment.entries, report.holdout.entries) == (2, 1, 1)
    assert (report.treatment.rate, report.holdout.rate) == (1.0, 0.0)
    since = only(store, since=T0)
    assert (since.refused, since.refused_by_reason) == (4, {"reentry_window": 3, "paused": 1})
    assert (since.entries, since.treatment.converted) == (2, 1)

    text = render_text(build_report(store, [Measured], journey=J))
    assert "in neither group: 5 triggers refused (paused 1, reentry_window 4)\n" in text
    data = json.loads(build_report(store, [Measured], journey=J).model_dump_json())
    [journey] = data["journeys"]
    assert (journey["refused"], journey["refused_by_reason"]) == (
        5,
        {"reentry_window": 4, "paused": 1},
    )


def test_early_window_conversions_and_median_times_to_convert(store):
    # Treated: bought at 30 min, at exactly a day (inside: the window includes its end), a
    # second after it, and at 3 days; two did not. Held out: at 2 h, 5 and 6 days; three not.
    for took in (30 * MINUTE, DAY, DAY + timedelta(seconds=1), 3 * DAY):
        entry(store, "treatment", took=took, revenue=10.0)
    for _ in range(2):
        entry(store, "treatment")
    for took in (2 * HOUR, 5 * DAY, 6 * DAY):
        entry(store, "holdout", took=took, revenue=10.0)
    for _ in range(3):
        entry(store, "holdout")
    entry(store, "treatment", "suppressed", reason="staff_account")  # not in the denominator

    report = only(store)
    t, h = report.treatment, report.holdout
    assert report.early_window == "1d"
    assert (t.entries, t.converted, t.early_converted) == (6, 4, 2)
    assert (h.entries, h.converted, h.early_converted) == (6, 3, 1)
    assert (t.early_rate, h.early_rate) == (pytest.approx(2 / 6), pytest.approx(1 / 6))
    assert report.early_absolute_lift == pytest.approx(2 / 6 - 1 / 6)
    assert report.early_absolute_lift_ci is not None
    # The middle two of four (a day and a day plus a second); the middle one of three.
    assert t.median_time_to_convert == DAY + timedelta(milliseconds=500)
    assert h.median_time_to_convert == 5 * DAY

    data = json.loads(build_report(store, [Measured], journey=J).model_dump_json())
    treated = data["journeys"][0]["treatment"]
    assert (treated["early_converted"], treated["median_time_to_convert"]) == (2, "P1DT0.5S")
    text = render_text(build_report(store, [Measured], journey=J))
    assert row(text, "treatment")[6:] == ["2", "33.33%"]
    assert row(text, "holdout")[6:] == ["1", "16.67%"]
    assert "lift within 1d: +16.67 pts (95% CI" in text
    assert "median time to convert: treatment 1d, holdout 5d\n" in text


def test_conversions_by_entry_path_each_with_its_goal_and_early_window(store):
    j = ComeBack.name
    # Cancelled (goal: a new subscription in 90 days, early 7 days): treated 2 of 4, held 0 of 2.
    cancelled = {"journey": j, "entry_event": "Subscription Cancelled"}
    entry(store, "treatment", took=5 * DAY, revenue=40.0, **cancelled)  # early: within 7 days
    entry(store, "treatment", took=20 * DAY, revenue=40.0, **cancelled)
    for group in ("treatment", "treatment", "holdout", "holdout"):
        entry(store, group, **cancelled)
    # By segment (goal: coming back in 30 days, early 3 days): treated 1 of 6, held 1 of 3.
    dormant = {"journey": j, "entry_event": "Segment Entered"}
    entry(store, "treatment", took=5 * DAY, **dormant)  # not early: past 3 days
    entry(store, "holdout", took=2 * DAY, **dormant)
    for group in ("treatment",) * 5 + ("holdout",) * 2:
        entry(store, group, **dormant)
    entry(store, "holdout", "suppressed", reason="negative_support_experience", **dormant)

    report = only(store, ComeBack)
    assert report.by_entry == [
        EntryPath(
            entry_event="Segment Entered",
            goal="Session Started within 30d",
            treatment=Conversions(entries=6, converted=1, rate=1 / 6),
            holdout=Conversions(entries=3, converted=1, rate=1 / 3),
        ),
        EntryPath(
            entry_event="Subscription Cancelled",
            goal=None,  # the journey's own goal
            treatment=Conversions(entries=4, converted=2, rate=0.5),
            holdout=Conversions(entries=2, converted=0, rate=0.0),
        ),
    ]
    t, h = report.treatment, report.holdout
    assert (t.entries, t.converted, h.entries, h.converted) == (10, 3, 5, 1)
    assert (report.early_window, t.early_converted, h.early_converted) == ("3d / 7d", 1, 1)

    text = render_text(build_report(store, [ComeBack], journey=j))
    assert (
        "entered by Segment Entered: treatment 1/6 16.67%, holdout 1/3 33.33%; "
        "goal Session Started within 30d\n" in text
    )
    assert "entered by Subscription Cancelled: treatment 2/4 50.00%, holdout 0/2 0.00%\n" in text
