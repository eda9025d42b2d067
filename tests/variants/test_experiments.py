"""A/B/n variants inside a journey, on the real dev server at virtual time: deterministic
assignment recorded on the run, the steps and the message; held-out users still get nothing;
the report's figures per variant; and the automatic winner that new entries then get."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

from PIL import Image
from playwright.async_api import async_playwright

from activities.holdout import assign_group
from activities.store import ExperimentAssignment, ExperimentDecision, JourneyRun, JourneyStepRow
from starter.report import build_report, render_text
from tests.conftest import settle
from tests.measurement.test_dashboard import CHROMIUM_ARGS
from tests.variants.journeys import SubjectTest
from workflows.experiments import Experiment
from workflows.journey import Journey

DAY = timedelta(days=1)
ROOT = Path(__file__).resolve().parents[2]


def test_assignment_is_stable_and_follows_the_weights():
    experiment = SubjectTest.subject
    users = [f"user-{i}" for i in range(20_000)]
    first = [experiment.assign("t_subject_test", u) for u in users]
    assert first == [experiment.assign("t_subject_test", u) for u in users]
    shares = Counter(first)
    assert abs(shares["plain"] / 20_000 - 0.25) < 0.015
    assert abs(shares["bold"] / 20_000 - 0.25) < 0.015
    assert abs(shares["emoji"] / 20_000 - 0.50) < 0.015
    # Another experiment splits the same users independently.
    other = Experiment("other", ["a", "b"])
    pairs = Counter(
        (v, other.assign("t_subject_test", u)) for u, v in zip(users, first, strict=True)
    )
    assert abs(pairs[("emoji", "a")] / shares["emoji"] - 0.5) < 0.03


def assignments(stack, user: str) -> list[ExperimentAssignment]:
    with stack.store.session() as session:
        return list(session.query(ExperimentAssignment).filter_by(user_id=user).all())


def steps_of(stack, user: str) -> list[JourneyStepRow]:
    [run] = stack.runs(user)
    return stack.store.steps(run.run_id)


async def test_each_user_gets_their_variant_recorded_and_held_out_users_get_nothing(stack_for):
    stack = await stack_for(SubjectTest)
    users = {group: [] for group in ("treatment", "holdout")}
    while min(len(v) for v in users.values()) < 6:
        user = stack.user()
        users[assign_group("t_subject_test", user, SubjectTest.holdout)].append(user)
        await stack.track("Signed Up", user)
    for user in users["treatment"] + users["holdout"]:
        await stack.advance("t_subject_test", user, 2 * DAY + timedelta(minutes=1))

    for user in users["treatment"]:
        expected = SubjectTest.subject.assign("t_subject_test", user)
        [assigned] = assignments(stack, user)
        assert (assigned.experiment, assigned.variant, assigned.group, assigned.reason) == (
            "welcome_subject",
            expected,
            "treatment",
            "assigned",
        )
        sent = stack.outbox(user)
        assert [(m.template, m.variant) for m in sent] == [
            ("welcome", expected),
            ("follow_up", expected),
        ]
        gap = sent[1].journey_time - sent[0].journey_time
        assert DAY <= gap < DAY + timedelta(minutes=2) if expected == "bold" else gap >= 2 * DAY
        variant_steps = [s for s in steps_of(stack, user) if s.kind == "variant"]
        assert [(s.name, s.detail) for s in variant_steps] == [("welcome_subject", expected)]

    for user in users["holdout"]:
        expected = SubjectTest.subject.assign("t_subject_test", user)
        [assigned] = assignments(stack, user)
        assert (assigned.variant, assigned.group) == (expected, "holdout")
        assert stack.outbox(user) == []
        held = [s for s in steps_of(stack, user) if s.status == "held_out"]
        assert [s.detail for s in held] == [f"variant {expected}"] * 2


def seed(stack, journey: type[Journey], variant: str, entries: int, converted: int) -> None:
    """Past closed treatment entries of one variant, as the engine records them."""
    now = datetime.now(UTC) - timedelta(days=10)
    with stack.store.session() as session:
        for i in range(entries):
            run_id = f"seed-{variant}-{i}-{now.timestamp()}"
            won = i < converted
            session.add(
                JourneyRun(
                    run_id=run_id,
                    workflow_id=f"{journey.name}:seed-{variant}-{i}",
                    journey=journey.name,
                    user_id=f"seed-{variant}-{i}",
                    group="treatment",
                    entered_at=now,
                    outcome="converted" if won else "completed",
                    outcome_at=now + DAY,
                    goal_at=now + DAY if won else None,
                    revenue=20.0 if won else None,
                )
            )
            session.add(
                ExperimentAssignment(
                    run_id=run_id,
                    experiment="welcome_subject",
                    journey=journey.name,
                    user_id=f"seed-{variant}-{i}",
                    variant=variant,
                    group="treatment",
                    reason="assigned",
                    assigned_at=now,
                )
            )
        session.commit()


async def test_once_a_variant_wins_new_entries_get_it_and_the_report_shows_why(stack_for):
    stack = await stack_for(SubjectTest)
    seed(stack, SubjectTest, "plain", 300, 30)
    seed(stack, SubjectTest, "bold", 300, 33)
    seed(stack, SubjectTest, "emoji", 600, 150)

    user = stack.user(treated_in=SubjectTest)
    while SubjectTest.subject.assign("t_subject_test", user) == "emoji":
        user = stack.user(treated_in=SubjectTest)  # one the hash would not give the winner
    await stack.track("Signed Up", user)
    await settle(stack.handle("t_subject_test", user))
    [assigned] = assignments(stack, user)
    assert (assigned.variant, assigned.reason) == ("emoji", "winner")

    with stack.store.session() as session:
        [decision] = session.query(ExperimentDecision).all()
    assert (decision.journey, decision.experiment, decision.winner) == (
        "t_subject_test",
        "welcome_subject",
        "emoji",
    )
    assert decision.p_value < 0.05 / 2
    assert {a["variant"]: a["entries"] for a in decision.figures["arms"]} == {
        "plain": 300,
        "bold": 300,
        "emoji": 600,
    }

    report = build_report(stack.store, [SubjectTest], journey="t_subject_test")
    [experiment] = report.journeys[0].experiments
    assert experiment.decision is not None and experiment.decision.winner == "emoji"
    by_variant = {v.variant: v for v in experiment.variants}
    assert (by_variant["plain"].entries, by_variant["plain"].converted) == (300, 30)
    assert by_variant["emoji"].rate == (150 + 0) / 601  # the new entry is still open
    assert (by_variant["emoji"].sent, by_variant["plain"].sent) == (1, 0)
    assert by_variant["emoji"].lift_vs_baseline is not None
    assert by_variant["emoji"].lift_vs_baseline_ci.low > 0
    assert by_variant["bold"].always_valid_p > 0.05
    assert by_variant["emoji"].revenue_per_entry == 150 * 20.0 / 601
    text = render_text(report)
    assert "experiment welcome_subject (baseline plain, automatic winner at alpha 0.05)" in text
    assert "winner: emoji" in text


async def test_no_winner_while_the_variants_convert_alike(stack_for):
    stack = await stack_for(SubjectTest)
    seed(stack, SubjectTest, "plain", 300, 30)
    seed(stack, SubjectTest, "bold", 300, 31)
    seed(stack, SubjectTest, "emoji", 600, 61)
    user = stack.user()
    await stack.track("Signed Up", user)
    await settle(stack.handle("t_subject_test", user))
    [assigned] = assignments(stack, user)
    assert assigned.reason == "assigned"
    assert assigned.variant == SubjectTest.subject.assign("t_subject_test", user)
    report = build_report(stack.store, [SubjectTest], journey="t_subject_test")
    assert report.journeys[0].experiments[0].decision is None
    assert "no winner yet" in render_text(report)


async def test_the_dashboard_shows_each_variant_and_the_winner(api_for, chromium):
    api = await api_for(SubjectTest)
    stack = api.stack
    seed(stack, SubjectTest, "plain", 300, 30)
    seed(stack, SubjectTest, "bold", 300, 33)
    seed(stack, SubjectTest, "emoji", 600, 150)
    user = stack.user(treated_in=SubjectTest)
    await stack.track("Signed Up", user)  # the assignment decides the winner
    await settle(stack.handle("t_subject_test", user))

    page = await api.http.get("/dashboard", params={"journey": "t_subject_test"})
    assert page.status_code == 200
    html = page.text
    assert 'data-experiment="welcome_subject"' in html
    for variant in ("plain", "bold", "emoji"):
        assert f'data-variant="{variant}"' in html
    emoji_row = html.split('data-variant="emoji"')[1].split("</tr>")[0]
    assert "winner" in emoji_row  # entries, sent, converted: 600 closed and the new one
    assert "<td>601</td><td>1</td><td>150</td>" in emoji_row
    assert "new entries get it" in html

    # In a real browser: the experiment's table is there, the winner marked, laid out.
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = await browser.new_context(
            viewport={"width": 1280, "height": 900},
            extra_http_headers={"Authorization": f"Bearer {api.key}"},
        )
        tab = await context.new_page()
        await tab.goto(f"{api.url}/dashboard?journey=t_subject_test")
        shot = Image.open(BytesIO(await tab.screenshot(full_page=True)))
        table = tab.locator('.experiment[data-experiment="welcome_subject"]')
        assert await table.is_visible()
        winner = table.locator('.variant-row[data-variant="emoji"] .winner')
        assert await winner.inner_text() == "winner"
        box = await table.bounding_box()
        assert box is not None and box["x"] + box["width"] <= shot.width
        await browser.close()

    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "JOURNEYS_DATABASE_URL": stack.store.url,
        "JOURNEYS_JOURNEY_MODULES": '["tests.variants.journeys"]',
    }
    cmd = [sys.executable, "-m", "starter.cli", "report", "t_subject_test", "--json"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    [experiment] = json.loads(done.stdout)["journeys"][0]["experiments"]
    assert experiment["decision"]["winner"] == "emoji"
    assert [v["variant"] for v in experiment["variants"]] == ["plain", "bold", "emoji"]
    assert experiment["variants"][0]["lift_vs_baseline"] is None
    assert experiment["variants"][2]["always_valid_p"] < 0.025
