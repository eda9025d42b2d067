"""The one shape every source maps to, plus the small helpers all adapters share.

Adapters are pure functions from (headers, payload) to a list of SourceCall, so each vendor's
quirks are unit-testable without HTTP, Temporal or a database. SourceCall mirrors the Segment
spec (track and identify) in snake case; `to_segment()` gives the spec's own field names, which
is what the API's call models take. Timestamps are always tz-aware UTC, so journeys never compare
a shop's local time with a server's.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from starter.sources.errors import InvalidPayload

__all__ = ["SourceCall", "as_dict", "build", "header", "to_utc"]


class SourceCall(BaseModel):
    """One Segment-spec call derived from a webhook (a delivery may yield several)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["track", "identify", "delete"]
    event: str | None = None
    """Our event name, for track calls ("Checkout Started", "Subscription Cancelled", ...)."""
    user_id: str | None = None
    anonymous_id: str | None = None
    message_id: str = Field(min_length=1)
    """Stable per delivery and call, so a redelivery dedupes (e.g. "shopify:<webhook id>:track")."""
    timestamp: datetime
    """When it happened, tz-aware UTC (a naive value is taken as UTC)."""
    properties: dict[str, Any] = Field(default_factory=dict)
    traits: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    """Segment context (timezone, locale, traits...), passed through from Segment-shaped senders."""

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)
        except OverflowError:  # a ValueError is what pydantic reports as a validation error
            raise ValueError("is outside the years 1 to 9999 in UTC") from None

    @model_validator(mode="after")
    def _track_has_an_event(self) -> SourceCall:
        if self.type == "track" and not self.event:
            raise ValueError("a track call needs an event name")
        return self

    def to_segment(self) -> dict[str, Any]:
        """The call in the Segment spec's field names (userId, messageId, ISO timestamp...)."""
        call: dict[str, Any] = {
            "type": self.type,
            "messageId": self.message_id,
            "timestamp": self.timestamp.isoformat(),
        }
        if self.user_id is not None:
            call["userId"] = self.user_id
        if self.anonymous_id is not None:
            call["anonymousId"] = self.anonymous_id
        if self.type == "track":
            call["event"] = self.event
            call["properties"] = dict(self.properties)
        elif self.type == "identify":
            call["traits"] = dict(self.traits)
        if self.context:
            call["context"] = dict(self.context)
        return call


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value by case-insensitive name (HTTP/2 lowercases them), None when absent."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def to_utc(value: object, what: str) -> datetime:
    """An ISO-8601 string, Unix seconds or datetime as tz-aware UTC; InvalidPayload otherwise
    (naming `what`, never the value)."""
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            when = datetime.fromtimestamp(value, UTC)
        except (ValueError, OverflowError, OSError) as err:
            raise InvalidPayload(f"{what} is not a Unix time") from err
    elif isinstance(value, str) and value.strip():
        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError as err:
            raise InvalidPayload(f"{what} is not an ISO-8601 time") from err
    else:
        raise InvalidPayload(f"{what} is missing")
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    try:  # "0001-01-01T00:00:00+01:00" is before the year 1 in UTC: no datetime holds it
        return when.astimezone(UTC)
    except OverflowError as err:
        raise InvalidPayload(f"{what} is outside the years 1 to 9999 in UTC") from err


def as_dict(value: object, what: str) -> dict[str, Any]:
    """A JSON object from the payload ({} for null); InvalidPayload for any other type."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidPayload(f"{what} is not an object")
    return value


def build(**fields: Any) -> SourceCall:
    """A SourceCall, with a validation failure reported as InvalidPayload."""
    try:
        return SourceCall(**fields)
    except ValidationError as err:
        raise InvalidPayload(f"cannot build a call: {err.errors()[0]['msg']}") from err
