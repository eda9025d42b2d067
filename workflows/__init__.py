"""Journeys and the engine that runs them: deterministic code only, no I/O.

Authors import what they need from here:

    from workflows import Goal, Journey, Trigger, on
"""

from workflows.errors import (
    DuplicateJourneyError,
    JourneyDefinitionError,
    JourneyError,
    UnknownJourneyError,
)
from workflows.journey import Goal, Journey, JourneyExit, Trigger, on
from workflows.models import Event, Profile

__all__ = [
    "DuplicateJourneyError",
    "Event",
    "Goal",
    "Journey",
    "JourneyDefinitionError",
    "JourneyError",
    "JourneyExit",
    "Profile",
    "Trigger",
    "UnknownJourneyError",
    "on",
]
