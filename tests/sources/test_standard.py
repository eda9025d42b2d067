"""Standard Webhooks bodies: one Segment call or a list, mapped with stable message IDs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from starter.sources import InvalidPayload, SourceCall, UnsupportedTopic, standard_webhook_calls

HEADERS = {
    "webhook-id": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
    "webhook-timestamp": "1795532400",
    "webhook-signature": "v1,verified separately",
}
SENT = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
TRACK: dict[str, Any] = {
    "type": "track",
    "event": "Product Added",
    "userId": "user_42",
    "timestamp": "2026-11-24T16:59:58.123+02:00",
    "properties": {"product_id": "sku-1", "price": 9.5},
    "context": {"timezone": "Europe/Berlin", "locale": "de-DE"},
}
IDENTIFY: dict[str, Any] = {
    "type": "identify",
    "anonymousId": "anon-7f3c",
    "traits": {"email": "ada@example.com", "firstName": "Ada"},
}


def test_a_single_track_call_takes_the_webhook_id_as_message_id() -> None:
    assert standard_webhook_calls(HEADERS, TRACK) == [
        SourceCall(
            type="track",
            event="Product Added",
            user_id="user_42",
            message_id="msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
            timestamp=datetime(2026, 11, 24, 14, 59, 58, 123000, tzinfo=UTC),
            properties={"product_id": "sku-1", "price": 9.5},
            context={"timezone": "Europe/Berlin", "locale": "de-DE"},
        )
    ]


def test_an_identify_without_a_timestamp_is_dated_by_the_webhook_timestamp() -> None:
    assert standard_webhook_calls(HEADERS, IDENTIFY) == [
        SourceCall(
            type="identify",
            anonymous_id="anon-7f3c",
            message_id="msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
            timestamp=SENT,
            traits={"email": "ada@example.com", "firstName": "Ada"},
        )
    ]


def test_a_list_gets_index_suffixes_unless_a_call_brings_its_own_message_id() -> None:
    own = {**TRACK, "messageId": "ajs-next-1f2e3d"}
    calls = standard_webhook_calls(HEADERS, [IDENTIFY, TRACK, own])
    assert [c.message_id for c in calls] == [
        "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W:0",
        "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W:1",
        "ajs-next-1f2e3d",
    ]
    assert [c.type for c in calls] == ["identify", "track", "track"]


def test_unmapped_types_in_a_list_are_skipped_keeping_the_other_indexes() -> None:
    page = {"type": "page", "name": "Pricing", "userId": "user_42"}
    calls = standard_webhook_calls(HEADERS, [page, TRACK])
    assert [c.message_id for c in calls] == ["msg_2KWPBgLlAfxdpx2AI54pPJ85f4W:1"]


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "page", "name": "Pricing", "userId": "user_42"},
        {"type": "delete", "userId": "user_42"},
        [{"type": "screen", "userId": "user_42"}],
        [],
    ],
)
def test_nothing_mappable_is_unsupported(payload: dict[str, Any] | list[Any]) -> None:
    with pytest.raises(UnsupportedTopic):
        standard_webhook_calls(HEADERS, payload)


def test_header_names_are_case_insensitive_and_numeric_ids_become_text() -> None:
    upper = {k.upper(): v for k, v in HEADERS.items()}
    [call] = standard_webhook_calls(upper, {**TRACK, "userId": 42})
    assert call.user_id == "42" and call.message_id == HEADERS["webhook-id"]


@pytest.mark.parametrize(
    ("payload", "headers"),
    [
        pytest.param({**TRACK, "userId": None}, HEADERS, id="no-identity"),
        pytest.param({**TRACK, "event": ""}, HEADERS, id="track-without-event"),
        pytest.param({**TRACK, "timestamp": "yesterday"}, HEADERS, id="bad-timestamp"),
        pytest.param({**TRACK, "properties": [1, 2]}, HEADERS, id="bad-properties"),
        pytest.param({**TRACK, "userId": {"id": 1}}, HEADERS, id="bad-user-id"),
        pytest.param([TRACK, "oops"], HEADERS, id="list-item-not-an-object"),
        pytest.param(IDENTIFY, {}, id="no-message-id-nor-webhook-headers"),
    ],
)
def test_malformed_calls_are_invalid_payloads(
    payload: dict[str, Any] | list[Any], headers: dict[str, str]
) -> None:
    with pytest.raises(InvalidPayload):
        standard_webhook_calls(headers, payload)
