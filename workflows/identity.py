"""Workflow IDs and search attributes: readable, and free of email addresses or other PII.

One workflow per (journey, user): its ID is `<journey>:<user key>`. The user key is the user ID
when that is a plain identifier, and a hash of it otherwise (an email address used as user ID,
say), so nothing personal reaches workflow IDs, search attributes or the Temporal UI.
"""

from __future__ import annotations

import hashlib
import re

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

JOURNEY_NAME = SearchAttributeKey.for_keyword("JourneyName")
JOURNEY_USER_ID = SearchAttributeKey.for_keyword("JourneyUserId")
JOURNEY_STEP = SearchAttributeKey.for_keyword("JourneyStep")
JOURNEY_GROUP = SearchAttributeKey.for_keyword("JourneyGroup")

SEARCH_ATTRIBUTES = (JOURNEY_NAME, JOURNEY_USER_ID, JOURNEY_STEP, JOURNEY_GROUP)
"""Registered by the worker on startup; all Keyword."""

_PLAIN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}")
_HASHED = re.compile(r"h_[0-9a-f]{32}")
"""The shape of a hashed key: a plain ID of that shape is hashed too, so the two kinds of key
never meet (a user named after another user's hash would otherwise share their workflows)."""


def user_key(user_id: str) -> str:
    """The user ID if it is a plain identifier, else `h_` and a stable hash of it."""
    if _PLAIN_ID.fullmatch(user_id) and not _HASHED.fullmatch(user_id):
        return user_id
    return "h_" + hashlib.sha256(user_id.encode()).hexdigest()[:32]


def workflow_id(journey: str, user_id: str) -> str:
    """The one workflow ID of `journey` for `user_id`."""
    return f"{journey}:{user_key(user_id)}"


def start_attributes(journey: str, user_id: str) -> TypedSearchAttributes:
    """The search attributes a journey workflow is started with (the UI lists it at once)."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(JOURNEY_NAME, journey),
            SearchAttributePair(JOURNEY_USER_ID, user_key(user_id)),
        ]
    )
