"""The report recovers a known truth: a few thousand simulated users through a real journey.

Every user enters `t_measured` over the webhook (half are held out by the journey's hash).
Each then buys with a known probability, 8 % when held out and 12 % when treated, at a random
point inside the 7-day attribution window, with a known amount; a few others buy only after
their window closed. Journey clocks are moved with time skipping, so days pass in
milliseconds. The report must count exactly who bought in time and their revenue, and its 95 %
interval must hold the true lift of 4 points. The draw is seeded, so the run is the same every
time (the interval check is not a coin toss in CI).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func
from sqlmodel import select

from activities.holdout import assign_group
from activities.sending import DeliveryPolicy, SendingActivities
from activities.store import JourneyRun
from starter.report import build_report
from tests.measurement.journeys import Measured

USERS = 2000
TRUE_RATE = {"holdout": 0.08, "treatment": 0.12}
LATE_BUYERS = 40
SEED = 20261125
J = Measured.name


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


def count(store, *where) -> int:
    """Runs of the journey recorded so far (matching `where`)."""
    query = select(func.count()).select_from(JourneyRun).where(JourneyRun.journey == J, *where)
    with store.session() as session:
        return session.exec(query).one()


async def wait_for(check, what: str, tries: int = 2400) -> None:
    for _ in range(tries):  # real work by the worker: entries and outcomes being recorded
        if check():
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


async def test_the_report_recovers_the_true_lift_and_the_revenue_exactly(api_for, store):
    rng = random.Random(SEED)
    api = await api_for(
        Measured, sending=SendingActivities(store, policy=DeliveryPolicy(quiet_hours=None))
    )
    users = [f"sim-{i:05d}" for i in range(USERS)]
    group = {u: assign_group(J, u, Measured.holdout) for u in users}
    entries = [
        {**track(u, "Trial Started"), "context": {"traits": {"email": f"{u}@example.test"}}}
        for u in users
    ]
    await post_batches(api, entries)
    await wait_for(lambda: count(store) == USERS, "every entry")

    # Who buys, when and for how much: drawn here, so the truth is known.
    buyers: dict[str, tuple[timedelta, float]] = {}
    for u in users:
        if rng.random() < TRUE_RATE[group[u]]:
            after = timedelta(minutes=rng.randint(60, 6 * 24 * 60))
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

    def converted() -> int:
        return sum(1 for r in store.runs(journey=J) if r.outcome == "converted")

    await wait_for(lambda: converted() == len(buyers), f"{len(buyers)} conversions recorded")
    await wait_for(
        lambda: (
            sum(1 for r in store.runs(journey=J) if r.user_id in late and r.outcome) == LATE_BUYERS
        ),
        "the late buyers' windows to close",
    )

    [report] = build_report(store, [Measured], journey=J).journeys
    t, h = report.treatment, report.holdout
    assert t.size == sum(1 for u in users if group[u] == "treatment")
    assert h.size == USERS - t.size
    for arm, result in (("treatment", t), ("holdout", h)):
        bought = [amount for u, (_, amount) in buyers.items() if group[u] == arm]
        assert result.converted == len(bought)
        assert result.revenue == pytest.approx(sum(bought), abs=0.005)  # to the cent
    assert report.exits["converted"] == len(buyers)
    assert report.exits["completed"] == LATE_BUYERS  # bought after the window: no credit

    true_lift = TRUE_RATE["treatment"] - TRUE_RATE["holdout"]
    assert report.absolute_lift_ci is not None
    assert report.absolute_lift_ci.low <= true_lift <= report.absolute_lift_ci.high
    assert report.warning is None
    # The truth is four points; with about a thousand users per arm the test should see it.
    assert report.significant and report.p_value is not None and report.p_value < 0.05
    mean_amount = (15 + 250) / 2
    true_incremental = true_lift * mean_amount * t.size
    assert report.incremental_revenue_ci is not None
    assert report.incremental_revenue_ci.low <= true_incremental
    assert true_incremental <= report.incremental_revenue_ci.high
    # Per step: the nudge went to every treated user, and each held-out user was recorded.
    nudge = report.steps[0]
    assert (nudge.step, nudge.sent, nudge.held_out) == ("nudge", t.size, h.size)
