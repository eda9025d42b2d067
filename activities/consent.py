"""Whether a user consents to a marketing message on a channel, and to its topic.

Pure, like activities/suppression.py, so the send activity asks it for every channel it tries
and tests read the rules off without a database. The inputs are the user's traits, their
recorded choices (the `subscriptions` table: {(channel, topic): subscribed}, topic "*" for the
whole channel) and whether they unsubscribed from all email (profiles.email_unsubscribed_at).

The rules, in order:
- a recorded "no" for the channel wins over anything an identify says ("unsubscribed");
- a recorded "no" for the message's topic on that channel ("topic_unsubscribed");
- email: the unsubscribe link or trait, a bad address, a consent trait set false, as before;
  with JOURNEYS_CONSENT=opt_in, a recorded "yes" or a consent trait set true is needed too;
- SMS always needs a "yes" (TCPA and its peers): a recorded one, or `sms_consent` true;
- push needs no more than the device the user registered (the operating system asked them),
  unless a `push_consent` trait says false;
- in-app and webhook messages are the product's own surfaces: no consent check.
Transactional messages (marketing=False) skip all of it; only an SMS STOP stops those too,
checked by the caller, since the carrier refuses them anyway.
"""

from __future__ import annotations

from typing import Any, Literal

from activities.suppression import CONSENT_TRAITS, _truthy, opted_out

ConsentMode = Literal["opt_out", "opt_in"]
ALL = "*"

SMS_CONSENT_TRAITS = ("sms_consent", "sms_opt_in")
"""Traits that give (true) or withhold (false) consent to marketing texts."""
PUSH_CONSENT_TRAITS = ("push_consent",)
"""A trait that withholds (false) consent to marketing push notifications."""


def consent(
    channel: str,
    *,
    topic: str | None,
    traits: dict[str, Any],
    subscriptions: dict[tuple[str, str], bool],
    email_unsubscribed: bool = False,
    mode: ConsentMode = "opt_out",
) -> str | None:
    """The reason a marketing message on `channel` must not go to this user, or None."""
    if channel not in ("email", "audience", "sms", "push"):
        return None
    kind = "email" if channel == "audience" else channel
    if subscriptions.get((kind, ALL)) is False:
        return "unsubscribed"
    if topic and subscriptions.get((kind, topic)) is False:
        return "topic_unsubscribed"
    if kind == "email":
        reason = opted_out(traits, email_unsubscribed)
        if reason:
            return reason
        if mode == "opt_in" and not (
            subscriptions.get(("email", ALL)) is True
            or any(_truthy(traits.get(key)) for key in CONSENT_TRAITS)
        ):
            return "no_consent"
        return None
    if kind == "sms":
        if subscriptions.get(("sms", ALL)) is True:
            return None
        given = [traits[key] for key in SMS_CONSENT_TRAITS if key in traits]
        return None if given and all(_truthy(v) for v in given) else "no_consent"
    if any(key in traits and _falsy(traits[key]) for key in PUSH_CONSENT_TRAITS):
        return "no_consent"
    return None


def _falsy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("false", "no", "0", "n")
    return value is False or (type(value) is int and value == 0)
