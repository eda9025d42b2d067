"""Win-back by its trigger: emails on days 7, 28 and 73; suppressions; the goal."""

from __future__ import annotations

from datetime import timedelta

from tests.journeys.conftest import DAY, Shop
from workflows.journeys import WinBack

MINUTE = timedelta(minutes=1)


async def test_feedback_whats_new_and_offer_at_7_21_and_45_days_from_the_trigger(shop_for):
    shop: Shop = await shop_for(WinBack)
    user = shop.user("win_back")
    await shop.identify(user, first_name="Lin")
    await shop.track(user, "Subscription Cancelled", {"plan": "pro"})
    await shop.advance("win_back", user, 7 * DAY - MINUTE)
    assert shop.templates(user) == []
    await shop.advance("win_back", user, MINUTE)
    assert shop.templates(user) == ["feedback"]  # day 7
    # The later two at the user's best hour (send-time optimisation) within the day after.
    await shop.advance("win_back", user, 14 * DAY - MINUTE)
    assert shop.templates(user) == ["feedback"]
    await shop.advance("win_back", user, DAY + MINUTE)  # day 22
    assert shop.templates(user) == ["feedback", "whats_new"]
    await shop.advance("win_back", user, 23 * DAY - MINUTE)
    assert shop.templates(user) == ["feedback", "whats_new"]
    await shop.advance("win_back", user, DAY + MINUTE)  # day 46
    assert shop.templates(user) == ["feedback", "whats_new", "offer"]
    feedback, whats_new, offer = shop.sent(user)
    entered = shop.api.stack.runs(user)[0].entered_at
    for message, day in ((whats_new, 21), (offer, 45)):
        assert day * DAY <= message.journey_time - entered < (day + 1) * DAY
        assert (message.timing, message.send_hour) == ("default", 10)  # no history: 10 AM
    assert "WELCOMEBACK30" not in feedback.body_html and "%" not in feedback.body_html
    assert "WELCOMEBACK30" in offer.body_html and "30%" in offer.body_html


async def test_a_flag_set_after_entry_stops_the_later_emails_with_its_reason(shop_for):
    shop = await shop_for(WinBack)
    for group in ("treatment", "holdout"):
        user = shop.user("win_back", group=group)
        await shop.identify(user)
        await shop.track(user, "Subscription Cancelled")
        await shop.advance("win_back", user, 8 * DAY)  # the feedback email (or held out)
        await shop.identify(user, negative_support_experience="true")  # a CRM flag on day 8
        await shop.advance("win_back", user, 14 * DAY)  # day 22: whats_new is not sent

        result = await shop.api.stack.result("win_back", user)
        assert (result.outcome, result.reason) == ("exited", "negative_support_experience")
        assert shop.templates(user) == (["feedback"] if group == "treatment" else [])
        [run] = shop.api.stack.runs(user)
        assert (run.outcome, run.outcome_reason) == ("exited", "negative_support_experience")


async def test_subscription_started_ends_it_as_a_conversion(shop_for):
    shop = await shop_for(WinBack)
    user = shop.user("win_back")
    await shop.identify(user)
    await shop.track(user, "Subscription Cancelled")
    await shop.advance("win_back", user, 30 * DAY)
    await shop.track(user, "Subscription Started", {"plan": "pro", "revenue": 99})
    result = await shop.outcome("win_back", user)
    assert (result.outcome, result.messages_sent) == ("converted", 2)


async def test_negative_support_and_opt_out_suppress_it(shop_for):
    shop = await shop_for(WinBack)
    angry, opted_out = shop.user("win_back"), shop.user("win_back")
    await shop.identify(angry, negative_support_experience=True)
    await shop.identify(opted_out, win_back_opt_out="yes")
    for user, reason in ((angry, "negative_support_experience"),
                         (opted_out, "opted_out_of_win_back")):  # fmt: skip
        await shop.track(user, "Subscription Cancelled")
        result = await shop.api.stack.result("win_back", user)
        assert (result.outcome, result.reason) == ("suppressed", reason)
        assert shop.sent(user) == []
