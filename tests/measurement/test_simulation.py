"""The report recovers a known truth: a few thousand simulated users through a real journey.

Every user enters `t_simulated` over the webhook (half are held out by the journey's hash),
once quiet for a few seconds after the trigger, as cart recovery enters a shopper. Each then
buys with a known probability, 8 % when held out and 12 % when treated, at a random point
inside the 7-day attribution window, with a known amount; a few others buy only after their
window closed. Journey clocks are moved with time skipping, so days pass in milliseconds. The
report must count exactly who bought in time (and within the 1-day early window) and their
revenue, and its 95 % interval must hold the true lift of 4 points. The draw is seeded, so the
run is the same every time (the interval check is not a coin toss in CI).

Around them, users the test must not count: staff accounts (suppressed at entry, in both groups
alike; some buy anyway), users who buy before their quiet period ran out (never entered: no
row), and second triggers inside the 30-day re-entry window (refused). The groups, their rates
and the lift must be exactly those of the drawn users alone.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func
from sqlmodel import select

from activities.holdout import assign_group
from activities.sending import DeliveryPolicy, SendingActivities
from activities.store import JourneyRefusal, JourneyRun
from starter import stats
from starter.report import Conversions, EntryPath, build_report
from tests.measurement.journeys import STAFF_TRAIT, Simulated

USERS = 2000
TRUE_RATE = {"holdout": 0.08, "treatment": 0.12}
LATE_BUYERS = 40
STAFF = 60
"""Suppressed at entry; a third of them buy anyway."""
NEVER_ENTERED = 80
"""Buy right behind their trigger, inside the quiet period: never entered."""
REFUSED = 50
"""Trigger again after their run ended, inside the re-entry window."""
SEED = 20261125
J = Simulated.name
EARLY = timedelta(days=1)


async def post_batches(api, calls: list[dict], size: int = 50, parallel: int = 2) -> None:
    gate = asyncio.Semaphore(parallel)

    async def post(chunk: list[dict]) -> None:
        async with gate:
            response = await api.http.post("/v1/batch", json={"batch": chunk})
            assert response.status_code == 200, response.text
            assert {r["status"] for r in response.json()["results"]} == {"accepted"}

    await asyncio.gather(*(post(calls[i : i + size]) for i in range(0, len(calls), size)))


def track(user: str, event: str, **properties: object) -> dict:
    return {
        "type": "track",
        "event": event,
        "userId": user,
        "messageId": str(uuid.uuid4()),
        "timestamp": datetime.now(UTC).isoformat(),
        "properties": properties,
    }


def count(store, *where, table=JourneyRun) -> int:
    """Runs (or refusals) of the journey recorded so far (matching `where`)."""
    query = select(func.count()).select_from(table).where(table.journey == J, *where)
    with store.session() as session:
        return session.exec(query).one()


def signup(user: str, **traits: object) -> dict:
    return {
        **track(user, "Trial Started"),
        "context": {"traits": {"email": f"{user}@example.test", **traits}},
    }


async def wait_for(check, what: str, tries: int = 2400) -> None:
    for _ in range(tries):  # real work by the worker: entries and outcomes being recorded
        if check():
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


async def test_the_report_recovers_the_true_lift_and_the_revenue_exactly(api_for, store):
    rng = random.Random(SEED)
    api = await api_for(
        Simulated, sending=SendingActivities(store, policy=DeliveryPolicy(quiet_hours=None))
    )
    users = [f"sim-{i:05d}" for i in range(USERS)]
    group = {u: assign_group(J, u, Simulated.holdout) for u in users}
    staff = [f"staff-{i:03d}" for i in range(STAFF)]
    never = [f"never-{i:03d}" for i in range(NEVER_ENTERED)]
    # A trigger and a purchase right behind it, in one batch (one user's calls keep their
    # order): the purchase ends the quiet period before it ran out.
    hasty = [call for u in never for call in (signup(u), track(u, "Order Completed", revenue=80.0))]
    await post_batches(api, [signup(u) for u in users])
    await post_batches(api, [signup(u, **{STAFF_TRAIT: True}) for u in staff])
    await post_batches(api, hasty)
    await wait_for(lambda: count(store) == USERS + STAFF, "every entry")
    staff_groups = {r.group for r in store.runs(journey=J) if r.user_id in staff}
    assert staff_groups == {"treatment", "holdout"}  # suppression is blind to the group

    # Who buys, when and for how much: drawn here, so the truth is known.
    buyers: dict[str, tuple[timedelta, float]] = {}
    for u in users:
        if rng.random() < TRUE_RATE[group[u]]:
            after = timedelta(minutes=rng.randint(60, 6 * 24 * 60))
            if EARLY - timedelta(hours=1) < after <= EARLY:
                # The clock also runs in real time between entry and purchase (seconds here):
                # keep an hour between the early buyers and the early window's end.
                after -= timedelta(hours=1)
            buyers[u] = (after, round(rng.uniform(15, 250), 2))
    late = rng.sample([u for u in users if u not in buyers], LATE_BUYERS)

    gate = asyncio.Semaphore(16)

    async def buy(user: str, after: timedelta, amount: float) -> None:
        async with gate:
            await api.stack.advance(J, user, after)
            response = await api.http.post(
                "/v1/track", json=track(user, "Order Completed", revenue=amount)
            )
            assert response.status_code == 200, response.text

    await asyncio.gather(*(buy(u, after, amount) for u, (after, amount) in buyers.items()))
    # Late buyers: the window (7 days) closes first; their purchase is not the journey's.
    await asyncio.gather(*(buy(u, timedelta(days=8), 99.0) for u in late))
    # Staff who buy: their runs ended at entry, so the purchase reaches no journey.
    for u in staff[::3]:
        response = await api.http.post("/v1/track", json=track(u, "Order Completed", revenue=75.0))
        assert response.status_code == 200, response.text

    def converted() -> int:
        return sum(1 for r in store.runs(journey=J) if r.outcome == "converted")

    await wait_for(lambda: converted() == len(buyers), f"{len(buyers)} conversions recorded")
    await wait_for(
        lambda: (
            sum(1 for r in store.runs(journey=J) if r.user_id in late and r.outcome) == LATE_BUYERS
        ),
        "the late buyers' windows to close",
    )

    # Users whose runs have ended trigger again, inside the re-entry window: refused.
    again = rng.sample(sorted([*buyers, *late]), REFUSED)
    await post_batches(api, [signup(u) for u in again])
    await wait_for(lambda: count(store, table=JourneyRefusal) == REFUSED, "every refusal")

    [report] = build_report(store, [Simulated], journey=J).journeys
    t, h = report.treatment, report.holdout
    size = {arm: sum(1 for u in users if group[u] == arm) for arm in ("treatment", "holdout")}
    bought = {arm: [u for u in buyers if group[u] == arm] for arm in ("treatment", "holdout")}
    for arm, result in (("treatment", t), ("holdout", h)):
        assert (result.entries, result.users) == (size[arm], size[arm])
        assert result.converted == len(bought[arm])
        assert result.rate == len(bought[arm]) / size[arm]
        revenue = sum(buyers[u][1] for u in bought[arm])
        assert result.revenue == pytest.approx(revenue, abs=0.005)  # to the cent
        early = [u for u in bought[arm] if buyers[u][0] <= EARLY]
        assert result.early_converted == len(early)
        assert result.early_rate == len(early) / size[arm]
        # Each purchase came its drawn time after entry, plus the real seconds in between.
        median = statistics.median(buyers[u][0] for u in bought[arm])
        assert result.median_time_to_convert is not None
        assert median <= result.median_time_to_convert < median + timedelta(minutes=30)
    assert report.entries == USERS
    # Exactly the lift of the drawn users alone: nobody else moved it.
    truth = stats.lift(
        len(bought["treatment"]), size["treatment"], len(bought["holdout"]), size["holdout"]
    )
    assert report.absolute_lift == truth.absolute and report.p_value == truth.p_value
    assert report.absolute_lift_ci is not None and truth.absolute_ci is not None
    assert (report.absolute_lift_ci.low, report.absolute_lift_ci.high) == (
        truth.absolute_ci.low,
        truth.absolute_ci.high,
    )
    assert report.by_entry == [
        EntryPath(
            entry_event="Trial Started",
            treatment=Conversions(entries=t.entries, converted=t.converted, rate=t.rate),
            holdout=Conversions(entries=h.entries, converted=h.converted, rate=h.rate),
        )
    ]
    assert report.exits["converted"] == len(buyers)
    assert report.exits["completed"] == LATE_BUYERS  # bought after the window: no credit
    assert report.exits["suppressed:staff_account"] == report.suppressed == STAFF
    assert report.failed == 0
    assert (report.refused, report.refused_by_reason) == (REFUSED, {"reentry_window": REFUSED})
    assert not [r for r in store.runs(journey=J) if r.user_id in never]  # no row at all
    assert count(store) == USERS + STAFF  # the refused triggers started no run

    true_lift = TRUE_RATE["treatment"] - TRUE_RATE["holdout"]
    assert report.absolute_lift_ci is not None
    assert report.absolute_lift_ci.low <= true_lift <= report.absolute_lift_ci.high
    assert report.warning is None
    # The truth is four points; with about a thousand users per arm the test should see it.
    assert report.significant and report.p_value is not None and report.p_value < 0.05
    mean_amount = (15 + 250) / 2
    true_incremental = true_lift * mean_amount * t.entries
    assert report.incremental_revenue_ci is not None
    assert report.incremental_revenue_ci.low <= true_incremental
    assert true_incremental <= report.incremental_revenue_ci.high
    # Per step: the nudge went to every treated user, and each held-out user was recorded.
    nudge = report.steps[0]
    assert (nudge.step, nudge.sent, nudge.held_out) == ("nudge", t.entries, h.entries)
