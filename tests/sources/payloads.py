"""Vendor-shaped payload fixtures (trimmed copies of the vendors' documented examples)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"


def raw(name: str) -> bytes:
    """The fixture's bytes exactly as a sender would post them (what signatures cover)."""
    return (FIXTURES / f"{name}.json").read_bytes()


def load(name: str) -> dict[str, Any]:
    """The fixture parsed, a fresh copy each call so tests can change it freely."""
    parsed: dict[str, Any] = json.loads(raw(name))
    return parsed
