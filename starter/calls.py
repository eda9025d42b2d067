"""The calls senders make, in the Segment spec's own field names, and how a body is read.

A Segment or RudderStack webhook destination can point at the API unchanged:
https://segment.com/docs/connections/spec/ (track, identify, batch). Unknown top-level fields
are refused (a typo such as `userid` would otherwise drop the user silently). Whatever a sender
posts is either a call or a 400/422 naming the field: nothing a sender can write reaches code
that would answer 500, which senders retry for ever.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import uuid
from collections.abc import AsyncIterable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    Strict,
    WithJsonSchema,
    model_validator,
    with_config,
)
from typing_extensions import TypedDict

from activities.addresses import email_address
from workflows.models import Event

MAX_BODY = 1_000_000
"""Bytes: a larger body is a 413, refused before reading when Content-Length says so."""

BODY_DEADLINE = 5.0
"""Seconds to receive a whole body once its request is being read: a body trickled slower
than that is a 408 and its connection is closed, so it holds nothing (a slot, a socket)."""

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


def _in_utc_range(value: datetime) -> datetime:
    """A time that exists in UTC: "0001-01-01T00:00:00+01:00" is a year-0 instant, which
    `datetime` cannot hold, and converting it (as every later step does) raised OverflowError."""
    if value.tzinfo is not None:
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise ValueError("is outside the years 1 to 9999 once converted to UTC") from None
    return value


Time = Annotated[datetime, BeforeValidator(_date_time_text), AfterValidator(_in_utc_range)]


def _email_trait(value: object) -> object:
    """The `email` trait: one address, or "" / null for none (kept as a trait, never mailed)."""
    if value is None or value == "":
        return value
    if email_address(value) is None:
        raise ValueError("must be one email address (local@domain), nothing more")
    return value


EmailTrait = Annotated[
    Any,
    PlainValidator(_email_trait),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "email", "maxLength": 254},
                {"type": "string", "maxLength": 0},
                {"type": "null"},
            ],
            "description": "one address, local@domain; empty or null for none",
        }
    ),
]


@with_config(ConfigDict(extra="allow"))
class Traits(TypedDict, total=False):
    """Profile traits: any names and values, but `email` is one address (it becomes a `To`)."""

    email: EmailTrait


@with_config(ConfigDict(extra="allow"))
class Context(TypedDict, total=False):
    """Segment context: free-form, except `traits`, which reach the profile like traits do."""

    traits: Traits | None


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
    context: Context = Field(default_factory=Context)
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
    traits: Traits = Field(default_factory=Traits)

    def all_traits(self) -> dict[str, Any]:
        """Top-level traits win over context.traits (Segment allows both)."""
        return {**self.context_traits(), **self.traits}


class DeleteCall(_Call):
    """A Segment delete call: erase the user (GDPR/CCPA), as DELETE /v1/users/{id} does
    (starter/erasure.py). Only who and the messageId matter: other fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["delete"] = "delete"


Call = Annotated[TrackCall | IdentifyCall | DeleteCall, Field(discriminator="type")]

AnyCall = TrackCall | IdentifyCall | DeleteCall


IGNORED_TYPES = frozenset({"page", "screen", "group", "alias"})
"""Segment call types a destination forwards that no journey uses: taken and ignored."""


class IgnoredCall(BaseModel):
    """A call of a type no journey uses: only what its answer repeats (the messageId) is read."""

    model_config = ConfigDict(extra="allow")

    type: Literal["page", "screen", "group", "alias"]
    messageId: Id | None = None


class BatchCall(BaseModel):
    """A Segment batch: up to 500 calls; top-level context and integrations apply to each.

    Items stay free-form objects here: each is validated on its own, so one bad item is
    answered "rejected" (naming its field) without sinking the rest.
    """

    model_config = ConfigDict(extra="forbid")

    batch: list[dict[str, Any]] = Field(min_length=1, max_length=500)
    context: Context = Field(default_factory=Context)
    integrations: dict[str, Any] = Field(default_factory=dict)
    sentAt: Time | None = None
    writeKey: str | None = Field(default=None, exclude=True, repr=False)


class BodyTooLarge(Exception):
    """The body passed `limit` bytes (413): MAX_BODY unless the route reads with less."""

    def __init__(self, limit: int = MAX_BODY) -> None:
        super().__init__(f"body over {limit} bytes")
        self.limit = limit


class BodyTooSlow(Exception):
    """The body did not arrive within BODY_DEADLINE (408)."""


async def read_body(
    chunks: AsyncIterable[bytes], *, limit: int = MAX_BODY, deadline: float = BODY_DEADLINE
) -> bytes:
    """The whole body, or BodyTooLarge past `limit` bytes (even without a Content-Length), or
    BodyTooSlow when it has not all arrived within `deadline` seconds (a trickle holds a socket,
    and a slot, for as long as the sender likes)."""
    received = bytearray()
    try:
        async with asyncio.timeout(deadline):
            async for chunk in chunks:
                received += chunk
                if len(received) > limit:
                    raise BodyTooLarge(limit)
    except TimeoutError:
        raise BodyTooSlow() from None
    return bytes(received)
