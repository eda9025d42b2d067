"""Holdout: a deterministic share of users runs the journey in shadow mode."""

from __future__ import annotations

from datetime import timedelta

from activities.holdout import assign_group
from tests.engine.sample_journeys import HeldOutCart

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def test_assignment_is_deterministic_and_close_to_the_fraction():
    users = [f"user-{i}" for i in range(20_000)]
    groups = [assign_group("cart_recovery", u, 0.15) for u in users]
    assert groups == [assign_group("cart_recovery", u, 0.15) for u in users]
    share = groups.count("holdout") / len(groups)
    assert 0.14 < share < 0.16
    # Another journey holds out a different set of users.
    other = [assign_group("win_back", u, 0.15) for u in users]
    assert other != groups
    assert all(assign_group("j", u, 0.0) == "treatment" for u in users[:1000])


def _user_in(stack, group: str) -> str:
    while True:
        user = stack.user()
        if assign_group("t_cart_holdout", user, 0.5) == group:
            return user


async def test_holdout_runs_the_same_timers_sends_nothing_and_records_the_conversion(stack_for):
    stack = await stack_for(HeldOutCart)
    held, treated = _user_in(stack, "holdout"), _user_in(stack, "treatment")
    for user in (held, treated):
        await stack.track("Product Added", user, {"sku": "chair"})
        await stack.advance("t_cart_holdout", user, 61 * MINUTE)
        await stack.advance("t_cart_holdout", user, 24 * HOUR)

    assert [m.template for m in stack.outbox(treated)] == ["reminder", "social_proof"]
    assert stack.outbox(held) == []
    held_state = await stack.state("t_cart_holdout", held)
    treated_state = await stack.state("t_cart_holdout", treated)
    assert (held_state.group, treated_state.group) == ("holdout", "treatment")
    assert held_state.step == treated_state.step == "watching_goal"
    assert (held_state.messages_sent, treated_state.messages_sent) == (0, 2)

    [run] = stack.runs(held)
    held_steps = [(s.kind, s.name, s.status) for s in stack.store.steps(run.run_id)]
    assert ("send", "reminder", "held_out") in held_steps
    assert ("send", "social_proof", "held_out") in held_steps
    # Same timers: the held-out user's steps match the treated user's, kind for kind.
    treated_steps = stack.store.steps(stack.runs(treated)[0].run_id)
    assert [s.kind for s in stack.store.steps(run.run_id)] == [s.kind for s in treated_steps]

    await stack.advance("t_cart_holdout", held, 2 * 24 * HOUR)  # day 3 of the 7-day window
    await stack.track("Order Completed", held, {"revenue": 42})
    result = await stack.result("t_cart_holdout", held)
    assert (result.outcome, result.group, result.messages_sent) == ("converted", "holdout", 0)
    [run] = stack.runs(held)
    assert (run.group, run.outcome, run.revenue) == ("holdout", "converted", 42.0)
