"""The subscription journeys on Stripe alone: Stripe's own event objects, signed with
Stripe-Signature and posted to the running API, start trial_expiring, convert upgrade_prompt
and start and convert win_back, with revenue in journey_runs; time is skipped per journey."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from activities.sending import SendingActivities
from activities.store import Store
from activities.templates import Renderer
from starter.sources import sign_stripe
from tests.conftest import NO_LIMITS
from tests.journeys.conftest import DAY, TEMPLATES, Shop
from tests.sources.payloads import load
from workflows.journeys import TrialExpiring, UpgradePrompt, WinBack

SECRET = "whsec_stripe_journeys_test"
MINUTE = timedelta(minutes=1)


@pytest.fixture
def stripe_shop(api_for: Any, store: Store) -> Any:
    """`await stripe_shop(Journey)`: the API with JOURNEYS_STRIPE_SECRET set, on a worker
    running the journey with its real templates."""

    async def start(journey: type) -> Shop:
        sending = SendingActivities(store, Renderer(TEMPLATES), policy=NO_LIMITS)
        return Shop(await api_for(journey, sending=sending, stripe_secret=SecretStr(SECRET)))

    return start


def stripe_event(fixture: str, customer: str, at: int, **fields: Any) -> dict[str, Any]:
    """A documented Stripe event (tests/sources/fixtures) as this test's customer sends it: a
    fresh evt_ ID, `created` at `at` (Unix seconds), and `fields` set on its data.object."""
    event = load(fixture)
    event["id"] = f"evt_{uuid.uuid4().hex[:24]}"
    event["created"] = at
    event["data"]["object"].update(customer=customer, **fields)
    return event


async def post(shop: Shop, event: dict[str, Any]) -> dict[str, Any]:
    """POST the event as Stripe does: the raw body, signed over "{t}.{body}"."""
    body = json.dumps(event).encode()
    headers = {
        "Stripe-Signature": sign_stripe(body, SECRET, int(time.time())),
        "Content-Type": "application/json",
    }
    response = await shop.api.http.post("/v1/sources/stripe", content=body, headers=headers)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def actions(answer: dict[str, Any]) -> list[tuple[str, str]]:
    return [(j["journey"], j["action"]) for call in answer["calls"] for j in call["journeys"]]


async def test_a_stripe_trial_is_reminded_3_days_before_it_ends_and_converts_when_paid(stripe_shop):
    shop: Shop = await stripe_shop(TrialExpiring)
    user = shop.user("trial_expiring")
    customer = f"cus_{uuid.uuid4().hex[:14]}"
    await shop.identify(user, stripe_customer_id=customer)  # no metadata: the trait links them
    now = int(time.time())
    trial_end = now + 14 * 86400
    created = stripe_event(
        "stripe_subscription_created", customer, now, created=now, start_date=now,
        trial_start=now, trial_end=trial_end, billing_cycle_anchor=trial_end,
    )  # fmt: skip
    assert actions(await post(shop, created)) == [("trial_expiring", "triggered")]
    state = await shop.api.stack.state("trial_expiring", user)
    ends = datetime.fromtimestamp(trial_end, UTC)
    assert state.next_wakeup is not None
    assert abs(state.next_wakeup - (ends - 3 * DAY)) < timedelta(seconds=5)

    await shop.advance("trial_expiring", user, 11 * DAY - 5 * MINUTE)
    assert shop.sent(user) == []
    await shop.advance("trial_expiring", user, 10 * MINUTE)
    [reminder] = shop.sent(user)
    assert reminder.template == "trial_ending"
    assert ends.strftime("%B %d") in reminder.body_html

    # Stripe's trial_will_end (3 days before, too) is no journey's event: taken and ignored.
    warning = stripe_event("stripe_subscription_created", customer, now + 1)
    warning["type"] = "customer.subscription.trial_will_end"
    assert (await post(shop, warning))["status"] == "ignored"

    # The trial ends and Stripe makes the subscription active: it is paid now.
    paid = stripe_event(
        "stripe_subscription_trial_ended", customer, now + 2,
        trial_start=now, trial_end=trial_end, current_period_start=trial_end,
    )  # fmt: skip
    assert actions(await post(shop, paid)) == [("trial_expiring", "signalled")]
    result = await shop.api.stack.result("trial_expiring", user)
    assert result.outcome == "converted"
    [run] = shop.api.stack.runs(user)
    assert (run.outcome, run.outcome_reason, run.revenue) == (
        "converted",
        "Subscription Started",
        49.0,
    )


async def test_a_stripe_upgrade_converts_upgrade_prompt_with_its_revenue(stripe_shop):
    shop: Shop = await stripe_shop(UpgradePrompt)
    user = shop.user("upgrade_prompt")
    customer = f"cus_{uuid.uuid4().hex[:14]}"
    await shop.identify(user, plan="pro")
    for invitee in ("a", "b", "c"):
        answer = await shop.track(user, "Invite Sent", {"invitee_email": f"{invitee}@x.test"})
    assert [j["action"] for j in answer["journeys"]] == ["triggered"]
    await shop.api.stack.state("upgrade_prompt", user)
    assert [m.channel for m in shop.sent(user)] == ["in_app"]
    await shop.advance("upgrade_prompt", user, 2 * DAY)

    now = int(time.time()) + 1  # after the third invite, to the second
    metadata = {"metadata": {"user_id": user}}  # this time the integration set the user
    downgrade = stripe_event("stripe_subscription_upgraded", customer, now, **metadata)
    data = downgrade["data"]
    data["object"]["items"], data["previous_attributes"]["items"] = (
        data["previous_attributes"]["items"],
        data["object"]["items"],
    )
    ignored = await post(shop, downgrade)
    assert ignored["status"] == "ignored" and "no higher" in ignored["detail"]
    assert (await shop.api.stack.state("upgrade_prompt", user)).outcome is None

    upgrade = stripe_event("stripe_subscription_upgraded", customer, now, **metadata)
    assert actions(await post(shop, upgrade)) == [("upgrade_prompt", "signalled")]
    again = await post(shop, upgrade)  # Stripe delivers at least once
    assert [call["status"] for call in again["calls"]] == ["duplicate"]

    result = await shop.api.stack.result("upgrade_prompt", user)
    assert result.outcome == "converted"
    [run] = shop.api.stack.runs(user)
    assert (run.outcome, run.outcome_reason, run.revenue) == ("converted", "Plan Upgraded", 99.0)
    summary = shop.api.stack.store.event_summary(user, "Plan Upgraded")
    assert summary.count == 1
    assert summary.last_properties["previous_plan"] == "price_1PwA9cLkdIwHu7ixPro0Mnth"


async def test_a_stripe_cancellation_starts_win_back_and_a_first_paid_invoice_in_yen_ends_it(
    stripe_shop,
):
    shop: Shop = await stripe_shop(WinBack)
    user = shop.user("win_back")
    customer = f"cus_{uuid.uuid4().hex[:14]}"
    await shop.identify(user, stripe_customer_id=customer)
    now = int(time.time())
    deleted = stripe_event(
        "stripe_subscription_deleted", customer, now, metadata={}, canceled_at=now, ended_at=now
    )
    assert actions(await post(shop, deleted)) == [("win_back", "triggered")]
    await shop.advance("win_back", user, 7 * DAY + MINUTE)
    assert shop.templates(user) == ["feedback"]

    # A renewal of some other subscription is no return: ignored, the journey goes on.
    renewal = stripe_event("stripe_invoice_paid_jpy", customer, now + 1)
    renewal["data"]["object"]["billing_reason"] = "subscription_cycle"
    assert (await post(shop, renewal))["status"] == "ignored"

    # The customer subscribes again, paying ¥4,900 (Stripe's API version 2025-03-31 shape).
    invoice = stripe_event("stripe_invoice_paid_jpy", customer, now + 2)
    assert actions(await post(shop, invoice)) == [("win_back", "signalled")]
    result = await shop.api.stack.result("win_back", user)
    assert (result.outcome, result.messages_sent) == ("converted", 1)
    [run] = shop.api.stack.runs(user)
    assert (run.outcome_reason, run.revenue) == ("Subscription Started", 4900.0)  # not 49.0
