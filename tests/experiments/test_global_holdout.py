"""The global holdout: a share of users held out of every journey that takes part, and the
programme's total lift measured against them, first in `journeys report`, `--json` and the
dashboard."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from activities.holdout import assign_group, in_global_holdout
from activities.sending import SendingActivities
from activities.store import JourneyRun, Store
from activities.templates import Renderer
from starter.cli import main
from starter.report import build_report, render_text
from tests.conftest import NO_LIMITS
from tests.experiments.journeys import Recap, Receipts

TEMPLATES = Path(__file__).parent / "templates"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SHARE = 0.5


def test_the_global_draw_is_per_user_near_its_share_and_apart_from_each_journeys():
    users = [f"u{i}" for i in range(20_000)]
    held = {u for u in users if in_global_holdout(u, 0.1)}
    assert 0.09 < len(held) / len(users) < 0.11
    assert held == {u for u in users if in_global_holdout(u, 0.1)}  # deterministic
    assert held <= {u for u in users if in_global_holdout(u, 0.2)}  # a larger share adds users
    assert not any(in_global_holdout(u, 0.0) for u in users)  # off
    journey_held = {u for u in users if assign_group("cart_recovery", u, 0.15) == "holdout"}
    both = len(held & journey_held) / len(held)
    assert 0.12 < both < 0.18  # independent: a journey holds out its 15 % of them too


def user_where(held: bool) -> str:
    while True:
        user = f"g-{uuid.uuid4().hex[:10]}"
        if in_global_holdout(user, SHARE) == held:
            return user


async def test_a_globally_held_out_user_gets_nothing_yet_the_journey_watches_the_goal(
    stack_for, store, monkeypatch
):
    monkeypatch.setenv("JOURNEYS_GLOBAL_HOLDOUT", str(SHARE))
    sending = SendingActivities(store, Renderer(TEMPLATES), policy=NO_LIMITS)
    stack = await stack_for(Recap, Receipts, sending=sending)
    held, treated = user_where(held=True), user_where(held=False)
    for user in (held, treated):
        store.upsert_profile(user, email=f"{user}@example.test")
        await stack.track("Recap Requested", user)
        await stack.track("Order Placed", user)
        await stack.advance("t_recap", user, timedelta(minutes=1))
        await stack.advance("t_receipts", user, timedelta(minutes=1))

    runs = {run.journey: run for run in stack.runs(held)}
    assert (runs["t_recap"].group, runs["t_recap"].holdout_reason) == ("holdout", "global")
    # Transactional only (`global_holdout = False`): drawn by its own holdout (none), sent.
    assert (runs["t_receipts"].group, runs["t_receipts"].holdout_reason) == ("treatment", None)
    assert [m.template for m in stack.outbox(held)] == ["receipt"]
    assert sorted(m.template for m in stack.outbox(treated)) == ["recap", "receipt"]
    assert {r.holdout_reason for r in stack.runs(treated)} == {None}

    await stack.track("Order Completed", held, {"revenue": 40})
    result = await stack.result("t_recap", held)
    assert (result.outcome, result.group, result.messages_sent) == ("converted", "holdout", 0)


def run(journey: str, user: str, at: datetime, **values: Any) -> JourneyRun:
    return JourneyRun(
        run_id=uuid.uuid4().hex,
        workflow_id=f"{journey}:{user}",
        journey=journey,
        user_id=user,
        entered_at=at,
        **({"group": "treatment"} | values),
    )


def cohort(store: Store) -> None:
    """200 users outside the global holdout (60 convert, 10.0 each; a fifth held out by the
    journey itself) and 100 inside it (20 convert); plus what the programme leaves out."""
    for i in range(200):
        values: dict[str, Any] = {}
        if i % 5 == 0:
            values = {"group": "holdout", "holdout_reason": "journey"}
        if i < 60:
            values |= {"outcome": "converted", "revenue": 10.0, "goal_at": T0 + timedelta(days=1)}
        store.insert_once(run("t_recap", f"t{i}", T0 + timedelta(minutes=i), **values))
    for i in range(100):
        values = {"group": "holdout", "holdout_reason": "global"}
        if i < 20:
            values |= {"outcome": "converted", "revenue": 10.0, "goal_at": T0 + timedelta(days=1)}
        store.insert_once(run("t_recap", f"h{i}", T0 + timedelta(minutes=i), **values))
        # Receipts is not in the global holdout: its runs are no part of the programme.
        store.insert_once(run("t_receipts", f"h{i}", T0, outcome="converted", revenue=99.0))
    store.insert_once(run("t_recap", "t0", T0 - timedelta(days=3), outcome="converted"))  # before
    store.insert_once(run("t_recap", "t1", T0, outcome="suppressed"))  # in neither group


def test_the_programme_is_measured_in_users_against_the_global_holdout(store):
    cohort(store)
    report = build_report(store, [Recap, Receipts], global_holdout=0.1)
    p = report.programme
    assert p is not None
    assert (p.share, p.since, p.journeys, p.not_taking_part) == (
        0.1, T0, ["t_recap"], ["t_receipts"]
    )  # fmt: skip
    assert (p.treatment.users, p.treatment.converted_users, p.treatment.rate) == (200, 60, 0.3)
    assert (p.holdout.users, p.holdout.converted_users, p.holdout.rate) == (100, 20, 0.2)
    assert p.treatment.revenue_per_user == pytest.approx(3.0)
    assert p.holdout.revenue_per_user == pytest.approx(2.0)
    assert p.absolute_lift == pytest.approx(0.1)
    assert p.conversions_per_user_lift == pytest.approx(0.1)
    assert p.revenue_per_user_lift == pytest.approx(1.0)
    assert p.incremental_revenue == pytest.approx(200.0)
    assert p.absolute_lift_ci is not None and p.absolute_lift_ci.low < 0.1 < p.absolute_lift_ci.high
    assert p.warning is None and p.p_value is not None

    # The journey's own test: its treatment against its own holdout, the global ones beside.
    [recap] = [j for j in report.journeys if j.journey == "t_recap"]
    assert recap.globally_held_out == 100
    assert (recap.treatment.entries, recap.holdout.entries) == (161, 40)  # + the earlier entry
    assert recap.holdout.converted == 12  # the journey's own: every fifth of the first 60

    text = render_text(report)
    assert text.startswith("programme: every journey against the 10% global holdout, in users")
    assert "  treatment       200         60   30.00%       0.300          3.00" in text
    assert "  holdout         100         20   20.00%       0.200          2.00" in text
    assert "not in the global holdout: t_receipts" in text
    assert "globally held out (in the programme, not this test): 100" in text
    dumped = json.loads(report.model_dump_json())
    assert list(dumped)[:3] == ["generated_at", "since", "programme"]  # before the journeys

    one = build_report(store, [Recap, Receipts], journey="t_recap", global_holdout=0.1)
    assert one.programme is None  # one journey's report has no programme section


def test_without_a_global_holdout_the_report_has_no_programme_section(store):
    store.insert_once(run("t_recap", "u1", T0))
    assert build_report(store, [Recap], global_holdout=0.0).programme is None
    waiting = build_report(store, [Recap], global_holdout=0.05).programme
    assert waiting is not None and waiting.warning is not None and "turned on" in waiting.warning


def test_journeys_report_json_shows_the_programme_first(store, monkeypatch, capsys):
    cohort(store)
    monkeypatch.setenv("JOURNEYS_DATABASE_URL", store.url)
    monkeypatch.setenv("JOURNEYS_JOURNEY_MODULES", "tests.experiments.journeys")
    monkeypatch.setenv("JOURNEYS_GLOBAL_HOLDOUT", "0.1")
    assert main(["report", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert list(answer)[:3] == ["generated_at", "since", "programme"]
    programme = answer["programme"]
    assert programme["share"] == 0.1 and programme["treatment"]["users"] == 200
    assert programme["absolute_lift"] == pytest.approx(0.1)
    assert main(["report"]) == 0
    assert capsys.readouterr().out.startswith("programme: every journey against the 10%")
