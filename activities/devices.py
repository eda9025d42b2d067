"""Push device tokens carried by Segment calls, so an app's identify registers its device.

Segment's mobile libraries put the push token in `context.device.token` and the OS in
`context.device.type` ("ios", "android"); senders without them may use a `push_token` or
`device_token` trait. Pure, so ingestion pays one dict lookup for a call without a token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_TOKEN = 1024
"""Characters a token may have (FCM's are about 160; the devices table allows 1024)."""
PLATFORMS = frozenset({"ios", "android", "web"})
TOKEN_TRAITS = ("push_token", "device_token")


def normal_token(value: object) -> str | None:
    """A usable token: 1..MAX_TOKEN printable ASCII characters without spaces once trimmed
    (FCM's and APNs' tokens are), else None."""
    if not isinstance(value, str):
        return None
    token = value.strip()
    usable = token.isascii() and token.isprintable() and " " not in token
    return token if usable and 0 < len(token) <= MAX_TOKEN else None


def normal_platform(value: object) -> str | None:
    """ "ios", "android" or "web" (any case), else None: an unknown platform is not an error."""
    if not isinstance(value, str):
        return None
    platform = value.strip().lower()
    return platform if platform in PLATFORMS else None


def device_from_call(
    traits: Mapping[str, Any] | None, context: Mapping[str, Any] | None
) -> tuple[str, str | None] | None:
    """(token, platform) from a call's context.device, else from its traits; None when it
    carries no usable token."""
    device = context.get("device") if isinstance(context, Mapping) else None
    if isinstance(device, Mapping):
        token = normal_token(device.get("token"))
        if token is not None:
            return token, normal_platform(device.get("type"))
    if isinstance(traits, Mapping):
        for name in TOKEN_TRAITS:
            token = normal_token(traits.get(name))
            if token is not None:
                platform = device.get("type") if isinstance(device, Mapping) else None
                return token, normal_platform(traits.get("platform") or platform)
    return None
