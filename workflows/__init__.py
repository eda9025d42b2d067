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
from workflows.experiments import Experiment
from workflows.journey import Goal, Journey, JourneyExit, Rate, Trigger, on
from workflows.models import Event, Profile
from workflows.send_time import BestTime

__all__ = [
    "BestTime",
    "DuplicateJourneyError",
    "Event",
    "Experiment",
    "Goal",
    "Journey",
    "JourneyDefinitionError",
    "JourneyError",
    "JourneyExit",
    "Profile",
    "Rate",
    "Trigger",
    "UnknownJourneyError",
    "on",
]
