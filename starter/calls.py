"""The calls senders make, in the Segment spec's own field names.

A Segment or RudderStack webhook destination can point at the API unchanged:
https://segment.com/docs/connections/spec/ (track, identify, batch). Unknown top-level fields
are refused (a typo such as `userid` would otherwise drop the user silently).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from workflows.models import Event

Id = Annotated[str, Field(min_length=1, max_length=255)]


class _Call(BaseModel):
    """Fields every Segment call shares."""

    model_config = ConfigDict(extra="forbid")

    userId: Id | None = None
    anonymousId: Id | None = None
    messageId: Id | None = None
    timestamp: datetime | None = None
    originalTimestamp: datetime | None = None
    sentAt: datetime | None = None
    receivedAt: datetime | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    integrations: dict[str, Any] = Field(default_factory=dict)
    channel: str | None = None
    version: int | str | None = None
    writeKey: str | None = Field(default=None, exclude=True, repr=False)

    @model_validator(mode="after")
    def _needs_an_identity(self) -> _Call:
        if not self.userId and not self.anonymousId:
            raise ValueError("userId or anonymousId is required")
        return self

    @property
    def user_id(self) -> str:
        """The ID journeys know the user by: userId, else anonymousId."""
        return self.userId or self.anonymousId or ""

    @property
    def message_id(self) -> str:
        """The sender's messageId (the dedupe key), or a fresh one when it sent none."""
        if self.messageId is None:
            self.messageId = f"api-{uuid.uuid4()}"
        return self.messageId

    @property
    def when(self) -> datetime:
        """When it happened: timestamp, else originalTimestamp, else now (UTC when naive)."""
        when = self.timestamp or self.originalTimestamp or datetime.now(UTC)
        return when if when.tzinfo is not None else when.replace(tzinfo=UTC)

    def context_traits(self) -> dict[str, Any]:
        """Traits a track call carries in context.traits (Segment's convention), plus timezone."""
        traits = self.context.get("traits")
        merged = dict(traits) if isinstance(traits, dict) else {}
        timezone = self.context.get("timezone")
        if isinstance(timezone, str) and "timezone" not in merged:
            merged["timezone"] = timezone
        return merged


class TrackCall(_Call):
    """A Segment track call: the user did something."""

    type: Literal["track"] = "track"
    event: str = Field(min_length=1, max_length=200)
    properties: dict[str, Any] = Field(default_factory=dict)

    def to_event(self) -> Event:
        """The event as journeys see it: one user ID, one message ID, one timestamp."""
        return Event(
            name=self.event,
            user_id=self.user_id,
            message_id=self.message_id,
            timestamp=self.when,
            properties=self.properties,
        )


class IdentifyCall(_Call):
    """A Segment identify call: who the user is (email, name, timezone, consent, any trait)."""

    type: Literal["identify"] = "identify"
    traits: dict[str, Any] = Field(default_factory=dict)

    def all_traits(self) -> dict[str, Any]:
        """Top-level traits win over context.traits (Segment allows both)."""
        return {**self.context_traits(), **self.traits}


Call = Annotated[TrackCall | IdentifyCall, Field(discriminator="type")]


class BatchCall(BaseModel):
    """A Segment batch: up to 500 calls; top-level context and integrations apply to each."""

    model_config = ConfigDict(extra="forbid")

    batch: list[dict[str, Any]] = Field(min_length=1, max_length=500)
    context: dict[str, Any] = Field(default_factory=dict)
    integrations: dict[str, Any] = Field(default_factory=dict)
    sentAt: datetime | None = None
    writeKey: str | None = Field(default=None, exclude=True, repr=False)
