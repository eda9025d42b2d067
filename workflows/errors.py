"""Errors an author or operator can meet, each named so it can be caught and understood.

JourneyError
├── JourneyDefinitionError   a journey class is written wrong (at import, or found at run time)
├── DuplicateJourneyError    two unrelated journeys share a name
├── UnknownJourneyError      a name no loaded journey has
└── JourneyLoadError         JOURNEYS_JOURNEY_MODULES names a module that fails or has no journey
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


class JourneyLoadError(JourneyError):
    """JOURNEYS_JOURNEY_MODULES names a module that does not import, or that defines no journey."""
