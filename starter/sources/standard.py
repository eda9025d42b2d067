"""Standard Webhooks (standardwebhooks.com): any sender that posts Segment-spec calls to us.

The scheme (used by Svix and many SaaS senders) signs `"{webhook-id}.{webhook-timestamp}.{body}"`
with HMAC-SHA256 and sends space-separated `v1,<base64>` entries in `webhook-signature`, one
per active key, so rotation works by listing both. Signing the ID and timestamp means neither
can be swapped on a captured request, and the tolerance stops replays.

The body is one Segment call (track or identify) or a JSON list of them; `webhook-id` is stable
across the sender's retries, so it is the default message ID (suffixed ":<index>" in a list),
unless a call brings its own `messageId`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starter.sources.errors import InvalidPayload, InvalidSignature, UnsupportedTopic
from starter.sources.models import SourceCall, as_dict, build, header, to_utc
from starter.sources.signing import (
    TOLERANCE,
    any_match,
    check_fresh,
    required_header,
    sign_standard_webhook,
    unix_seconds,
)

__all__ = ["standard_webhook_calls", "verify_standard_webhook"]

TYPES = ("track", "identify")


def verify_standard_webhook(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    *,
    tolerance: int = TOLERANCE,
    now: float | None = None,
) -> None:
    """Check webhook-id, webhook-timestamp and webhook-signature; raise a SignatureError if not.

    `secret` is "whsec_<base64 key>" or, for senders that share a plain string, that string's
    UTF-8 bytes. Entries of other versions (e.g. asymmetric "v1a,") are ignored. As for Stripe,
    the signature is checked before the age, so StaleSignature means "genuine but old".
    """
    msg_id = required_header(headers, "webhook-id")
    raw_timestamp = required_header(headers, "webhook-timestamp")
    given = required_header(headers, "webhook-signature")
    timestamp = unix_seconds(raw_timestamp)
    if timestamp is None:
        raise InvalidSignature("webhook-timestamp is not Unix seconds")
    expected = sign_standard_webhook(msg_id, timestamp, body, secret)
    if not any_match([entry for entry in given.split() if entry.startswith("v1,")], expected):
        raise InvalidSignature("no v1 entry in webhook-signature matches the body")
    check_fresh(timestamp, tolerance, now)


def standard_webhook_calls(
    headers: Mapping[str, str],
    payload: dict[str, Any] | list[Any],
    types: tuple[str, ...] = TYPES,
) -> list[SourceCall]:
    """The Segment calls in the body, in order.

    Each call needs userId or anonymousId, and track calls an event. Its own messageId wins;
    otherwise the message ID is webhook-id (":<index>" appended for a list). Its timestamp is
    `timestamp`, else `originalTimestamp`, else webhook-timestamp. Calls of other types (page,
    screen, group, alias, Segment's delete notices) are skipped in a list; UnsupportedTopic is
    raised when nothing mappable is left. Malformed calls raise InvalidPayload. `types`: the
    call types taken (the Segment source takes "delete" too: an erasure).
    """
    batch = isinstance(payload, list)
    items: list[Any] = payload if isinstance(payload, list) else [payload]
    webhook_id = (header(headers, "webhook-id") or "").strip()
    sent_at = (header(headers, "webhook-timestamp") or "").strip()
    calls: list[SourceCall] = []
    skipped: list[str] = []
    for index, raw in enumerate(items):
        where = f"call {index}" if batch else "the call"
        item = as_dict(raw, where)
        kind = item.get("type")
        if kind not in types:
            skipped.append(str(kind))
            continue
        message_id = _message_id(item, webhook_id, index if batch else None)
        calls.append(_call(item, where, message_id, sent_at))
    if not calls:
        taken = " or ".join(types)
        raise UnsupportedTopic(f"no {taken} call (types: {', '.join(skipped) or '-'})")
    return calls


def _message_id(item: dict[str, Any], webhook_id: str, index: int | None) -> str:
    own = item.get("messageId")
    if isinstance(own, str) and own:
        return own
    if not webhook_id:
        raise InvalidPayload("no messageId and no webhook-id header")
    return webhook_id if index is None else f"{webhook_id}:{index}"


def _call(item: dict[str, Any], where: str, message_id: str, sent_at: str) -> SourceCall:
    user_id = _optional_id(item.get("userId"), f"{where}: userId")
    anonymous_id = _optional_id(item.get("anonymousId"), f"{where}: anonymousId")
    if user_id is None and anonymous_id is None:
        raise InvalidPayload(f"{where}: userId or anonymousId is required")
    when = item.get("timestamp") or item.get("originalTimestamp")
    if not when and sent_at.isdigit():
        when = int(sent_at)
    fields: dict[str, Any] = {
        "type": item["type"],
        "user_id": user_id,
        "anonymous_id": anonymous_id,
        "message_id": message_id,
        "timestamp": to_utc(when, f"{where}: timestamp"),
        "context": as_dict(item.get("context"), f"{where}: context"),
    }
    if item["type"] == "track":
        event = item.get("event")
        if not isinstance(event, str) or not event.strip():
            raise InvalidPayload(f"{where}: a track call needs an event")
        fields["event"] = event
        fields["properties"] = as_dict(item.get("properties"), f"{where}: properties")
    elif item["type"] == "identify":
        fields["traits"] = as_dict(item.get("traits"), f"{where}: traits")
    return build(**fields)


def _optional_id(value: object, what: str) -> str | None:
    """Segment IDs are strings; numbers are accepted as their decimal text."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise InvalidPayload(f"{what} is not a string")
