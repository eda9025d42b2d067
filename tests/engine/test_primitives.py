"""Every journey primitive on the real dev server, asserted at exact virtual times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.engine.sample_journeys import Cart, Checklist, PricedCart, TrialEnding

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def offset(stack, user_id: str, template: str) -> timedelta:
    """How long after entry, on the journey's clock, `template` was sent."""
    run = stack.runs(user_id)[-1]
    sent = [m for m in stack.outbox(user_id) if m.template == template]
    assert len(sent) == 1, f"{template} sent {len(sent)} times"
    return sent[0].journey_time.replace(tzinfo=UTC) - run.entered_at.replace(tzinfo=UTC)


async def test_inactive_for_sends_nothing_at_59_minutes_and_sends_at_61(stack_for):
    stack = await stack_for(Cart)
    user = stack.user()
    deliveries = await stack.track("Product Added", user, {"sku": "chair"})
    assert [d.action for d in deliveries] == ["triggered"]

    await stack.advance("t_cart", user, 59 * MINUTE)
    assert stack.outbox(user) == []
    state = await stack.state("t_cart", user)
    assert state.step == "inactive_for"
    assert state.messages_sent == 0

    await stack.advance("t_cart", user, 2 * MINUTE)
    [reminder] = stack.outbox(user)
    assert reminder.template == "reminder"
    assert reminder.recipient == f"{user}@example.test"
    assert reminder.context == {"skus": ["chair"]}
    assert 60 * MINUTE <= offset(stack, user, "reminder") < 61 * MINUTE


async def test_sleep_waits_its_full_duration_before_the_next_send(stack_for):
    stack = await stack_for(Cart)
    user = stack.user()
    await stack.track("Product Added", user, {"sku": "lamp"})
    await stack.advance("t_cart", user, 61 * MINUTE)
    await stack.advance("t_cart", user, 22 * HOUR)
    assert [m.template for m in stack.outbox(user)] == ["reminder"]
    state = await stack.state("t_cart", user)
    assert state.step == "sleep after reminder"
    assert state.messages_sent == 1

    await stack.advance("t_cart", user, 2 * HOUR)
    assert [m.template for m in stack.outbox(user)] == ["reminder", "social_proof"]
    assert 24 * HOUR <= offset(stack, user, "social_proof") < 24 * HOUR + 2 * MINUTE


async def test_inactivity_clock_restarts_on_every_cart_change_and_keeps_every_item(stack_for):
    stack = await stack_for(Cart)
    user = stack.user()
    await stack.track("Product Added", user, {"sku": "sofa"})
    await stack.advance("t_cart", user, 40 * MINUTE)
    await stack.track("Product Added", user, {"sku": "rug"})
    await stack.advance("t_cart", user, 40 * MINUTE)  # 80 min after entry, 40 after the change
    await stack.track("Product Added", user, {"sku": "vase"})
    await stack.track("Product Removed", user, {"sku": "rug"})
    await stack.advance("t_cart", user, 59 * MINUTE)
    assert stack.outbox(user) == []

    await stack.advance("t_cart", user, 2 * MINUTE)
    [reminder] = stack.outbox(user)
    assert reminder.context == {"skus": ["sofa", "vase"]}
    assert 139 * MINUTE <= offset(stack, user, "reminder") < 141 * MINUTE


async def test_a_cart_emptied_before_the_reminder_exits_without_sending(stack_for):
    stack = await stack_for(Cart)
    user = stack.user()
    await stack.track("Product Added", user, {"sku": "desk"})
    await stack.track("Product Removed", user, {"sku": "desk"})
    await stack.advance("t_cart", user, 61 * MINUTE)
    result = await stack.result("t_cart", user)
    assert (result.outcome, result.reason) == ("exited", "cart_emptied")
    assert stack.outbox(user) == []
    [run] = stack.runs(user)
    assert (run.outcome, run.outcome_reason) == ("exited", "cart_emptied")


async def test_wait_for_returns_the_event_when_it_arrives(stack_for):
    stack = await stack_for(Checklist)
    user = stack.user()
    await stack.track("Trial Started", user)
    await stack.advance("t_checklist", user, 30 * HOUR)
    state = await stack.state("t_checklist", user)
    assert state.step == "wait_for Checklist Done | Checklist Skipped"
    await stack.track("Checklist Done", user, {"tasks": 5})
    await stack.result("t_checklist", user)
    [message] = stack.outbox(user)
    assert message.template == "congrats"
    assert message.context == {"via": "Checklist Done", "tasks": 5}
    assert 30 * HOUR <= offset(stack, user, "congrats") < 30 * HOUR + MINUTE


async def test_wait_for_returns_none_at_its_timeout(stack_for):
    stack = await stack_for(Checklist)
    user = stack.user()
    await stack.track("Trial Started", user)
    await stack.advance("t_checklist", user, 47 * HOUR)
    assert stack.outbox(user) == []
    await stack.advance("t_checklist", user, 2 * HOUR)
    await stack.result("t_checklist", user)
    assert [m.template for m in stack.outbox(user)] == ["nudge"]
    assert 48 * HOUR <= offset(stack, user, "nudge") < 48 * HOUR + MINUTE


async def test_wait_for_sees_an_event_that_arrived_before_it_started_waiting(stack_for):
    stack = await stack_for(Checklist)
    user = stack.user()
    await stack.track("Trial Started", user)
    await stack.track("Checklist Skipped", user)  # may land before the wait is set up
    await stack.result("t_checklist", user)
    assert [m.context["via"] for m in stack.outbox(user)] == ["Checklist Skipped"]


async def test_sleep_until_wakes_at_the_given_time(stack_for):
    stack = await stack_for(TrialEnding)
    user = stack.user()
    trial_end = datetime.now(UTC) + timedelta(days=14)
    await stack.track("Trial Started", user, {"trial_end": trial_end.isoformat()})
    await stack.advance("t_trial_ending", user, timedelta(days=10, hours=23))
    assert stack.outbox(user) == []
    await stack.advance("t_trial_ending", user, 2 * HOUR)
    [message] = stack.outbox(user)
    sent_at = message.journey_time.replace(tzinfo=UTC)
    assert trial_end - timedelta(days=3) <= sent_at < trial_end - timedelta(days=3) + MINUTE


async def test_trigger_predicate_reads_the_event_and_the_profile(stack_for):
    stack = await stack_for(PricedCart)
    cheap, vip, ok, french = (
        stack.user("cheap"),
        stack.user("vip", plan="vip"),
        stack.user("ok"),
        stack.user("fr", country="FR"),
    )
    # Not triggered: offered to a running journey only, and none runs.
    assert [d.action for d in await stack.track("Product Added", cheap, {"price": 5})] == [
        "not_running"
    ]
    assert [d.action for d in await stack.track("Product Added", vip, {"price": 50})] == [
        "not_running"
    ]
    assert [d.action for d in await stack.track("Product Added", ok, {"price": 500})] == [
        "triggered"
    ]
    await stack.track("Product Added", french, {"price": 20})
    await stack.result("t_priced", ok)
    await stack.result("t_priced", french)
    assert [m.template for m in stack.outbox(ok)] == ["big_ticket"]
    assert [m.template for m in stack.outbox(french)] == ["rappel"]
    assert stack.runs(cheap) == [] and stack.runs(vip) == []
