"""The calls senders make, in the Segment spec's own field names.

A Segment or RudderStack webhook destination can point at the API unchanged:
https://segment.com/docs/connections/spec/ (track, identify, batch). Unknown top-level fields
are refused (a typo such as `userid` would otherwise drop the user silently).
"""

from __future__ import annotations

import json
import math
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, model_validator

from workflows.models import Event

Id = Annotated[str, Field(min_length=1, max_length=255)]

_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?"
)


def _date_time_text(value: object) -> object:
    """Only an ISO-8601 date-time (or a datetime, from a source): pydantic alone would also take
    0, "1700000000" or a bare date, which the documented schema calls invalid."""
    if isinstance(value, datetime) or (isinstance(value, str) and _DATE_TIME.fullmatch(value)):
        return value
    raise ValueError("must be an ISO-8601 date-time such as 2026-11-24T10:00:00Z")


Time = Annotated[datetime, BeforeValidator(_date_time_text)]


def parse_json(body: bytes | str) -> Any:
    """The body as strict JSON (RFC 8259), else ValueError.

    Python's json module also takes NaN and Infinity, turns 1e400 into inf, and raises
    RecursionError on deep nesting: none is JSON a sender means, and PostgreSQL refuses to store
    non-finite numbers (a permanent failure the API would report as "retry").
    """
    try:
        return json.loads(body, parse_constant=_not_json, parse_float=_finite)
    except RecursionError as err:
        raise ValueError("JSON nested too deeply") from err


def _not_json(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def nul_at(value: Any) -> tuple[str | int, ...] | None:
    """Where a string (or key) holds a NUL character, else None: PostgreSQL cannot store one
    in text, and no real call carries one, so the API refuses it (422) instead of a 503."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str) and "\x00" in item:
            return where
        if isinstance(item, dict):
            for key, inner in item.items():
                if "\x00" in key:
                    return where
                stack.append(((*where, key), inner))
        elif isinstance(item, list):
            stack.extend(((*where, index), inner) for index, inner in enumerate(item))
    return None


class _Call(BaseModel):
    """Fields every Segment call shares."""

    model_config = ConfigDict(
        extra="forbid",
        # The identity rule of `_needs_an_identity`, stated in the OpenAPI document too.
        json_schema_extra={
            "anyOf": [
                {"required": [key], "properties": {key: {"type": "string"}}}
                for key in ("userId", "anonymousId")
            ]
        },
    )

    userId: Id | None = None
    anonymousId: Id | None = None
    messageId: Id | None = None
    timestamp: Time | None = None
    originalTimestamp: Time | None = None
    sentAt: Time | None = None
    receivedAt: Time | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    integrations: dict[str, Any] = Field(default_factory=dict)
    channel: str | None = None
    version: Annotated[int, Strict()] | str | None = None  # strict: `false` is not version 0
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
    sentAt: Time | None = None
    writeKey: str | None = Field(default=None, exclude=True, repr=False)
