"""Errors an author or operator can meet, each named so it can be caught and understood.

JourneyError
├── JourneyDefinitionError   a journey class is written wrong (caught at import time)
├── DuplicateJourneyError    two unrelated journeys share a name
└── UnknownJourneyError      a name no loaded journey has
"""

from __future__ import annotations


class JourneyError(Exception):
    """Base of every error this package raises on purpose."""


class JourneyDefinitionError(JourneyError):
    """A journey class is missing a name or trigger, or declares something impossible."""


class DuplicateJourneyError(JourneyError):
    """Two journeys that are not parent and child claim the same name."""


class UnknownJourneyError(JourneyError):
    """A journey name that no loaded module defines."""
