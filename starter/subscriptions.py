"""A user's subscription to marketing email, apart from their traits.

PUT /v1/users/{user_id}/subscription   {"email": true | false}: sets it, answers the state

An identify may unsubscribe a user (an `unsubscribed` trait, as a sender's own preference centre
syncs it) but never subscribe them again: `{"unsubscribed": false}` in traits changes nothing.
This authenticated call, and the signed unsubscribe link in every email, are the only ways the
state changes (activities/store.py `set_subscription`).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict

router = APIRouter()

UserId = Annotated[str, Path(min_length=1, max_length=255)]


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    email: bool
    """True: marketing email may go to the user again; False: none."""


class Subscription(BaseModel):
    email: bool
    unsubscribedAt: datetime | None = None
    unsubscribedFrom: str | None = None


@router.put("/v1/users/{user_id}/subscription")
async def set_subscription(
    user_id: UserId, subscription: SubscriptionIn, request: Request
) -> Subscription:
    """Subscribe or unsubscribe the user from marketing email (the explicit way back); answers
    the state it left."""
    store = request.app.state.store
    await asyncio.to_thread(store.set_subscription, user_id, subscription.email, "api")
    profile = await asyncio.to_thread(store.get_profile, user_id)
    if profile is None or profile.email_unsubscribed_at is None:
        return Subscription(email=True)
    return Subscription(
        email=False,
        unsubscribedAt=profile.email_unsubscribed_at,
        unsubscribedFrom=profile.email_unsubscribed_from,
    )
