"""SourceCall's guarantees, its Segment form, and the package's public surface."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import TypeAdapter, ValidationError

import starter.sources
from starter.calls import Call
from starter.sources import InvalidPayload, SourceCall, stripe_calls
from tests.sources.payloads import load


def test_the_public_api_is_sorted_and_importable() -> None:
    assert starter.sources.__all__ == sorted(starter.sources.__all__)
    for name in starter.sources.__all__:
        assert getattr(starter.sources, name) is not None
    assert issubclass(InvalidPayload, ValueError)


def test_timestamps_are_always_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    aware = SourceCall(
        type="identify",
        user_id="u",
        message_id="m",
        timestamp=datetime(2026, 11, 24, 12, 0, tzinfo=plus_two),
    )
    naive = SourceCall(
        type="identify", user_id="u", message_id="m", timestamp=datetime(2026, 11, 24, 12, 0)
    )
    assert aware.timestamp == datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    assert aware.timestamp.tzinfo is UTC and naive.timestamp.tzinfo is UTC


def test_a_track_call_needs_an_event_and_fields_are_checked() -> None:
    with pytest.raises(ValidationError):
        SourceCall(type="track", user_id="u", message_id="m", timestamp=datetime.now(UTC))
    with pytest.raises(ValidationError):
        SourceCall(type="page", message_id="m", timestamp=datetime.now(UTC))  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        SourceCall(type="identify", message_id="", timestamp=datetime.now(UTC))


def test_the_segment_form_is_what_the_api_call_models_accept() -> None:
    [call] = stripe_calls(load("stripe_subscription_deleted"))
    segment = call.to_segment()
    assert segment == {
        "type": "track",
        "event": "Subscription Cancelled",
        "userId": "user_8f14e45f",
        "messageId": "evt_1QHmZ2LkdIwHu7ix8cW3kT1s",
        "timestamp": "2026-11-24T15:00:00+00:00",
        "properties": dict(call.properties),
    }
    parsed = TypeAdapter(Call).validate_python(segment)
    assert (parsed.user_id, parsed.message_id, parsed.when) == (
        "user_8f14e45f",
        "evt_1QHmZ2LkdIwHu7ix8cW3kT1s",
        call.timestamp,
    )
    identify = SourceCall(
        type="identify",
        anonymous_id="a",
        message_id="m",
        timestamp=call.timestamp,
        traits={"email": "x@example.com"},
        context={"timezone": "UTC"},
    )
    assert TypeAdapter(Call).validate_python(identify.to_segment()).all_traits() == {
        "email": "x@example.com",
        "timezone": "UTC",
    }
