"""A user's subscriptions and consent, per channel and per topic, apart from their traits.

PUT /v1/users/{user_id}/subscription   {"email": true, "sms": true, "topics": {"offers": false}}
GET /v1/users/{user_id}/subscription   the state, as the send activity reads it

Every field of the PUT is optional (at least one is needed):
- `email`: false unsubscribes from all marketing email; true is the way back, and with
  JOURNEYS_CONSENT=opt_in the explicit consent marketing email then needs;
- `sms`: true records the consent marketing texts always need; false withdraws it;
- `push`: false stops marketing push notifications (true lifts that);
- `topics`: {topic: subscribed} for email (the journeys' `topic`: "offers", "product_updates").

An identify may unsubscribe a user (an `unsubscribed` trait, as a sender's own preference centre
syncs it) but never subscribe them again: `{"unsubscribed": false}` in traits changes nothing.
This authenticated call and the signed link in every email (starter/unsubscribe.py) are the
only ways back. A number that texted STOP stays stopped whatever this says, until it texts
START: the carrier would refuse the texts anyway.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from activities.consent import ALL, consent
from activities.phones import phone_hash, profile_phone
from starter.methods import refuse_other_methods
from starter.settings import signing_key

router = APIRouter()

UserId = Annotated[str, Path(min_length=1, max_length=255)]
TOPIC_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
TOPIC = re.compile(TOPIC_PATTERN)


def _schema(schema: dict[str, Any]) -> None:
    """The documented body: each field a plain boolean (or map) that may be left out, and at
    least one of them; null is not a value this call takes."""
    for field in schema.get("properties", {}).values():
        options = [o for o in field.pop("anyOf", []) if o.get("type") != "null"]
        if options:
            field.update(options[0])
        field.pop("default", None)
    schema["minProperties"] = 1
    schema["properties"]["topics"]["propertyNames"] = {"pattern": TOPIC_PATTERN}


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_schema)

    email: bool | None = None
    """True: marketing email may go to the user (their consent, under opt_in); False: none."""
    sms: bool | None = None
    """True: the user consented to marketing texts; False: they withdrew it."""
    push: bool | None = None
    """False: no marketing push notifications; True lifts that."""
    topics: dict[str, bool] | None = Field(default=None, max_length=64)
    """Email topics the user joins (true) or leaves (false)."""

    @field_validator("topics")
    @classmethod
    def _topic_names(cls, value: dict[str, bool] | None) -> dict[str, bool] | None:
        for name in value or {}:
            if not TOPIC.match(name):
                raise ValueError(f"a topic is lowercase letters, digits and _: {name!r}")
        return value


class Subscription(BaseModel):
    email: bool
    """Marketing email may go (not unsubscribed, and consented where opt_in asks for it)."""
    unsubscribedAt: datetime | None = None
    unsubscribedFrom: str | None = None
    sms: bool
    """Marketing texts may go: consent given, and the user's number has not texted STOP."""
    smsStopped: bool = False
    """The user's number texted STOP: no text of any kind goes until it texts START."""
    push: bool
    """Marketing push notifications may go (to the devices the user registered)."""
    topics: dict[str, bool] = Field(default_factory=dict)
    """Email topics the user has chosen on or off; a topic not listed is on."""


@router.put("/v1/users/{user_id}/subscription")
async def set_subscription(
    user_id: UserId, subscription: SubscriptionIn, request: Request
) -> Subscription:
    """Change the user's subscriptions (the explicit way back); answers the state it left."""
    if subscription.model_fields_set == set() or None in (
        getattr(subscription, name) for name in subscription.model_fields_set
    ):
        raise HTTPException(422, "give at least one of email, sms, push, topics; none null")
    store = request.app.state.store

    def write() -> None:
        if subscription.email is not None:
            store.set_subscription(user_id, subscription.email, "api")
            store.set_channel_subscription(user_id, "email", ALL, subscription.email, "api")
        for channel in ("sms", "push"):
            value = getattr(subscription, channel)
            if value is not None:
                store.set_channel_subscription(user_id, channel, ALL, value, "api")
        for topic, value in (subscription.topics or {}).items():
            store.set_channel_subscription(user_id, "email", topic, value, "api")

    await asyncio.to_thread(write)
    return await get_subscription(user_id, request)


@router.get("/v1/users/{user_id}/subscription")
async def get_subscription(user_id: UserId, request: Request) -> Subscription:
    """The user's subscriptions as the send activity reads them."""
    settings = request.app.state.settings
    store = request.app.state.store

    def read() -> Subscription:
        profile = store.get_profile(user_id)
        traits: dict[str, Any] = dict(profile.traits) if profile else {}
        chosen = store.channel_subscriptions(user_id)
        unsubscribed = bool(profile and profile.email_unsubscribed_at)

        def allowed(channel: str) -> bool:
            reason = consent(
                channel,
                topic=None,
                traits=traits,
                subscriptions=chosen,
                email_unsubscribed=unsubscribed,
                mode=settings.consent,
            )
            return reason is None

        phone = profile_phone(traits, settings.sms_default_region)
        stopped = phone is not None and store.sms_opted_out(
            phone_hash(signing_key(settings), phone)
        )
        return Subscription(
            email=allowed("email"),
            unsubscribedAt=profile.email_unsubscribed_at if profile else None,
            unsubscribedFrom=profile.email_unsubscribed_from if unsubscribed and profile else None,
            sms=allowed("sms") and not stopped,
            smsStopped=stopped,
            push=allowed("push"),
            topics={t: v for (c, t), v in sorted(chosen.items()) if c == "email" and t != ALL},
        )

    return await asyncio.to_thread(read)


refuse_other_methods(router, "/v1/users/{user_id}/subscription", ("GET", "PUT"))
