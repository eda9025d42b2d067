"""Trial expiring: one email 3 days before the trial's end, from the event's trial_end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.journeys.conftest import DAY, Shop
from workflows.journeys import TrialExpiring

MINUTE = timedelta(minutes=1)


async def test_the_reminder_goes_3_days_before_trial_end(shop_for):
    shop: Shop = await shop_for(TrialExpiring)
    user = shop.user("trial_expiring")
    await shop.identify(user)
    trial_end = datetime.now(UTC) + 14 * DAY
    await shop.track(user, "Trial Started", {"plan": "pro", "trial_end": trial_end.isoformat()})
    state = await shop.api.stack.state("trial_expiring", user)
    assert state.next_wakeup is not None
    assert abs(state.next_wakeup - (trial_end - 3 * DAY)) < timedelta(seconds=5)

    await shop.advance("trial_expiring", user, 11 * DAY - 5 * MINUTE)
    assert shop.sent(user) == []
    await shop.advance("trial_expiring", user, 10 * MINUTE)
    [reminder] = shop.sent(user)
    assert reminder.template == "trial_ending"
    assert "3" in (reminder.subject or "") + (reminder.body_text or "")
    assert trial_end.strftime("%B %d") in reminder.body_html

    await shop.track(user, "Plan Upgraded", {"plan": "pro", "revenue": 29})
    assert (await shop.outcome("trial_expiring", user)).outcome == "converted"


async def test_stripe_style_unix_trial_end_and_short_trials_send_at_once(shop_for):
    shop = await shop_for(TrialExpiring)
    user = shop.user("trial_expiring")
    await shop.identify(user)
    trial_end = int((datetime.now(UTC) + 2 * DAY).timestamp())
    await shop.track(user, "Trial Started", {"trial_end": trial_end})
    await shop.api.stack.state("trial_expiring", user)
    assert shop.templates(user) == ["trial_ending"]


async def test_without_trial_end_it_exits_and_says_why(shop_for):
    shop = await shop_for(TrialExpiring)
    user = shop.user("trial_expiring")
    await shop.identify(user)
    await shop.track(user, "Trial Started", {"plan": "pro"})
    result = await shop.outcome("trial_expiring", user)
    assert (result.outcome, result.outcome_reason) == ("exited", "no_trial_end")
