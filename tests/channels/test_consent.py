"""The consent rules the send activity applies to every channel it tries (activities/consent.py),
and the author's mistakes a channel choice can hold, named before anything is sent."""

from __future__ import annotations

import pytest

from activities.consent import consent
from workflows import Journey, Trigger
from workflows.engine import _channels
from workflows.errors import JourneyDefinitionError


def reason(channel: str, traits=None, chosen=None, *, topic=None, mode="opt_out", gone=False):
    return consent(
        channel,
        topic=topic,
        traits=traits or {},
        subscriptions=chosen or {},
        email_unsubscribed=gone,
        mode=mode,
    )


def test_email_goes_until_the_user_leaves_unless_opt_in_asks_for_a_yes():
    assert reason("email") is None
    assert reason("email", gone=True) == "unsubscribed"
    assert reason("email", {"email_consent": False}) == "no_consent"
    assert reason("email", mode="opt_in") == "no_consent"
    assert reason("email", {"marketing_consent": "yes"}, mode="opt_in") is None
    assert reason("email", chosen={("email", "*"): True}, mode="opt_in") is None
    assert reason("audience", mode="opt_in") == "no_consent"  # a Mailchimp member is email


def test_a_recorded_no_wins_over_any_trait():
    chosen = {("email", "*"): False, ("sms", "*"): False, ("push", "*"): False}
    for channel in ("email", "sms", "push"):
        assert reason(channel, {"email_consent": True, "sms_consent": True}, chosen) == (
            "unsubscribed"
        )


def test_sms_always_needs_a_yes_and_push_only_a_device():
    assert reason("sms") == "no_consent"
    assert reason("sms", {"sms_consent": "true"}) is None
    assert reason("sms", {"sms_consent": True, "sms_opt_in": False}) == "no_consent"
    assert reason("sms", chosen={("sms", "*"): True}) is None
    assert reason("push") is None
    assert reason("push", {"push_consent": False}) == "no_consent"


def test_a_topic_left_on_one_channel_stays_open_on_the_others():
    chosen = {("email", "offers"): False}
    assert reason("email", chosen=chosen, topic="offers") == "topic_unsubscribed"
    assert reason("email", chosen=chosen, topic="product_updates") is None
    assert reason("push", chosen=chosen, topic="offers") is None
    assert reason("in_app", {"email_consent": False}, mode="opt_in") is None  # our own surface


@pytest.mark.parametrize("channel", [(), ("push", "push"), ("fax",), "fax", ("email", "pigeon")])
def test_a_channel_choice_that_cannot_mean_anything_is_named(channel):
    with pytest.raises(JourneyDefinitionError, match="channel must be one of"):
        _channels(channel, "reminder")


def test_a_choice_keeps_its_order():
    assert _channels(("push", "email", "sms"), "reminder") == ("push", "email", "sms")
    assert _channels("sms", "reminder") == ("sms",)


def test_a_topic_is_a_name():
    with pytest.raises(JourneyDefinitionError, match="`topic` must be lowercase"):

        class Shouting(Journey):
            name = "t_shouting"
            trigger = Trigger("Anything")
            topic = "Offers!"

            async def steps(self) -> None:
                await self.send("x")
