"""Holdout assignment: deterministic from (journey, user), so a user's group never changes."""

from __future__ import annotations

import hashlib

from workflows.models import Group


def assign_group(journey: str, user_id: str, holdout: float) -> Group:
    """Hold the user out when their hash, as a fraction of 2**64, falls below `holdout`."""
    digest = hashlib.sha256(f"{journey}\x00{user_id}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return "holdout" if fraction < holdout else "treatment"
