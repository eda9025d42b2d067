"""A journey's own state (what its `@on` handlers keep: a cart's items, counters) as JSON, so
a long-lived journey can continue as new (workflows/engine.py) and pick up where it was.

Workflow inputs are JSON, which would turn a datetime into a string and a tuple into a list
without saying so; this encoding tags those types and gives them back as they were. A value it
cannot carry (an open file, an object of the author's own class) raises `NotCarriable`, and the
engine then keeps that journey in one run rather than resume it wrong.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from workflows.models import Event, Profile

ENGINE_ATTRIBUTES = frozenset(
    {"user_id", "event", "profile", "group", "entered_at", "last_message_at", "_runtime"}
)
"""Set by the engine on every run (see Journey's docstring), not part of the author's state."""

_TAG = "__carried__"


class NotCarriable(TypeError):
    """A journey attribute holds a value this encoding cannot restore exactly."""


def snapshot(journey: object) -> dict[str, Any]:
    """The journey instance's own attributes, encoded."""
    return {
        name: encode(value, name)
        for name, value in vars(journey).items()
        if name not in ENGINE_ATTRIBUTES
    }


def restore(journey: object, state: dict[str, Any]) -> None:
    """Put a `snapshot` back on a journey instance, replacing what its `__init__` set."""
    for name, value in state.items():
        setattr(journey, name, decode(value))


def encode(value: Any, where: str = "value") -> Any:
    """`value` as JSON data; types JSON lacks are tagged so `decode` returns them as they were."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [encode(item, where) for item in value]
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value) and _TAG not in value:
            return {key: encode(item, f"{where}.{key}") for key, item in value.items()}
        return _tagged("dict", [[encode(k, where), encode(v, where)] for k, v in value.items()])
    if isinstance(value, tuple):
        return _tagged("tuple", [encode(item, where) for item in value])
    if isinstance(value, set | frozenset):
        items = [encode(item, where) for item in value]
        items.sort(key=repr)  # a stable order, whatever the hash seed
        return _tagged("frozenset" if isinstance(value, frozenset) else "set", items)
    if isinstance(value, datetime):
        return _tagged("datetime", value.isoformat())
    if isinstance(value, date):
        return _tagged("date", value.isoformat())
    if isinstance(value, timedelta):
        return _tagged("timedelta", [value.days, value.seconds, value.microseconds])
    if isinstance(value, Decimal):
        return _tagged("decimal", str(value))
    if isinstance(value, Event | Profile):
        return _tagged(type(value).__name__, value.model_dump(mode="json"))
    raise NotCarriable(f"{where}: a {type(value).__name__} cannot be carried to a new run")


def decode(value: Any) -> Any:
    """The inverse of `encode`."""
    if isinstance(value, list):
        return [decode(item) for item in value]
    if not isinstance(value, dict):
        return value
    if _TAG not in value:
        return {key: decode(item) for key, item in value.items()}
    kind, data = value[_TAG], value["value"]
    if kind == "dict":
        return {decode(k): decode(v) for k, v in data}
    if kind == "tuple":
        return tuple(decode(item) for item in data)
    if kind in ("set", "frozenset"):
        items = [decode(item) for item in data]
        return set(items) if kind == "set" else frozenset(items)
    if kind == "datetime":
        return datetime.fromisoformat(data)
    if kind == "date":
        return date.fromisoformat(data)
    if kind == "timedelta":
        days, seconds, microseconds = data
        return timedelta(days=days, seconds=seconds, microseconds=microseconds)
    if kind == "decimal":
        return Decimal(data)
    if kind == "Event":
        return Event.model_validate(data)
    if kind == "Profile":
        return Profile.model_validate(data)
    raise NotCarriable(f"unknown carried type {kind!r}")


def _tagged(kind: str, data: Any) -> dict[str, Any]:
    return {_TAG: kind, "value": data}
