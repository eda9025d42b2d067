"""`journeys report` on runs a real journey recorded: groups, lift, revenue, steps, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from activities.holdout import assign_group
from activities.sending import DeliveryPolicy, SendingActivities
from starter.report import build_report, render_text
from tests.measurement.journeys import Measured
from workflows.errors import UnknownJourneyError

ROOT = Path(__file__).resolve().parents[2]
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
J = Measured.name

pytestmark = pytest.mark.both_databases


def users_in(stack, group: str, count: int, **traits) -> list[str]:
    found: list[str] = []
    while len(found) < count:
        user = stack.user(**traits)
        if assign_group(J, user, Measured.holdout) == group:
            found.append(user)
    return found


async def run_the_cohort(stack) -> None:
    """Four treated and three held-out users, each ending a different way."""
    t_early, t_late, t_never = users_in(stack, "treatment", 3)
    [t_unsubscribed] = users_in(stack, "treatment", 1, unsubscribed=True)
    h_buyer, h_never, h_open = users_in(stack, "holdout", 3)
    for user in (t_early, t_late, t_never, t_unsubscribed, h_buyer, h_never, h_open):
        await stack.track("Trial Started", user)

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
    # h_open is still inside its window: it counts in the holdout's size, not as a conversion.


@pytest.fixture
async def cohort(stack_for, store):
    policy = DeliveryPolicy(quiet_hours=None, frequency_cap=1)  # the reminder hits the cap
    stack = await stack_for(Measured, sending=SendingActivities(store, policy=policy))
    await run_the_cohort(stack)
    return stack


async def test_the_report_counts_groups_conversions_revenue_lift_and_steps(cohort, store):
    [report] = build_report(store, [Measured], journey=J).journeys
    assert (report.entered, report.attribution_window, report.holdout_share) == (7, "7d", 0.5)
    t, h = report.treatment, report.holdout
    assert (t.size, t.converted, t.revenue, t.in_window) == (4, 2, 49.5, 0)
    assert (h.size, h.converted, h.revenue, h.in_window) == (3, 1, 40.0, 1)
    assert t.rate == 0.5 and h.rate == pytest.approx(1 / 3)
    assert report.absolute_lift == pytest.approx(0.5 - 1 / 3)
    assert report.incremental_revenue == pytest.approx((49.5 / 4 - 40 / 3) * 4)
    assert report.warning is not None and "too small" in report.warning
    assert report.significant is False
    assert report.exits == {"converted": 3, "completed": 3}

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
    assert f"{J}: 7 entered, attribution window 7d" in text
    assert "treatment         4          2   50.00%" in text
    assert "lift: +16.67 pts (95% CI" in text
    assert "! too small to tell" in text
    assert "frequency_cap 2, unsubscribed 1" in text

    later = build_report(store, [Measured], since=datetime.now(UTC) + HOUR).journeys
    assert [(j.journey, j.entered) for j in later] == [(J, 0)]  # --since leaves them out
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
    assert journey["treatment"]["converted"] == 2 and journey["holdout"]["size"] == 3
    assert journey["absolute_lift_ci"]["low"] < journey["absolute_lift"]

    text = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert text.returncode == 0 and f"{J}: 7 entered" in text.stdout

    unknown = subprocess.run([*cmd, "nope"], env=env, capture_output=True, text=True)
    assert unknown.returncode == 2 and "unknown journey 'nope'" in unknown.stderr
