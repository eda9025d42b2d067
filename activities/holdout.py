"""Holdout assignment: deterministic from (journey, user), so a user's group never changes; and
the programme's global holdout, deterministic from the user alone."""

from __future__ import annotations

import hashlib

from workflows.models import Group


def assign_group(journey: str, user_id: str, holdout: float) -> Group:
    """Hold the user out when their hash, as a fraction of 2**64, falls below `holdout`."""
    digest = hashlib.sha256(f"{journey}\x00{user_id}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return "holdout" if fraction < holdout else "treatment"


GLOBAL_SALT = "global-holdout"
"""Hashed with the user ID for the global holdout: a hyphen no journey name may hold, so the
draw is independent of every journey's own (`{journey}\x00{user}`)."""


def in_global_holdout(user_id: str, share: float) -> bool:
    """Whether the user is in the programme's global holdout of `share` (JOURNEYS_GLOBAL_HOLDOUT):
    held out of every journey that takes part, whatever each journey's own draw."""
    if share <= 0:
        return False
    digest = hashlib.sha256(f"{GLOBAL_SALT}\x00{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share
