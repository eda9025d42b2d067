"""A journey's own state survives the hand-over to a new run exactly, types included."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from workflows.carry import NotCarriable, decode, encode
from workflows.models import Event


def test_state_round_trips_through_json_with_its_types():
    event = Event(name="Product Added", user_id="u1", message_id="m1", timestamp=datetime.now(UTC))
    state = {
        "items": {"sku-1": {"price": 9.5, "tags": ["a", "b"]}},
        "when": datetime(2026, 12, 5, 9, 45, tzinfo=UTC),
        "day": date(2026, 12, 5),
        "gap": timedelta(hours=26, microseconds=5),
        "pair": ("x", 1),
        "seen": {"b", "a"},
        "frozen": frozenset({3, 1}),
        "by_number": {1: "one", 2: "two"},
        "total": Decimal("10.10"),
        "last": event,
        "nothing": None,
        "tagged_lookalike": {"__carried__": "tuple", "value": [1]},
    }
    wire = json.loads(json.dumps(encode(state)))  # what a workflow input does to it
    assert decode(wire) == state
    assert isinstance(decode(wire)["pair"], tuple)
    assert isinstance(decode(wire)["tagged_lookalike"], dict)


def test_a_value_of_the_authors_own_class_is_refused_by_name():
    class Tally:
        pass

    with pytest.raises(NotCarriable, match=r"state\.tally"):
        encode({"tally": Tally()}, "state")
