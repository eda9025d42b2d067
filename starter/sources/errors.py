"""What can go wrong with a sender's webhook, as exceptions the API layer maps to answers.

A signature problem is the sender's (or an attacker's) fault and must never reach the mapping
code: the API answers 401 so a genuine sender alerts its owner, and never says which part failed
beyond the class name. An unsupported topic is not an error for the sender at all: answering 200
"ignored" stops it retrying a delivery we will never use (Shopify even removes a subscription
that keeps failing). A payload we cannot map despite a good signature is a bug or a format
change on their side: InvalidPayload is a ValueError, so the API can answer 422 and log it.
"""

from __future__ import annotations

__all__ = [
    "InvalidPayload",
    "InvalidSignature",
    "MissingSignature",
    "SignatureError",
    "StaleSignature",
    "UnsupportedTopic",
]


class SignatureError(Exception):
    """The request is not provably from the sender (the API answers 401)."""


class MissingSignature(SignatureError):
    """A header the scheme needs (signature, timestamp or message ID) is absent or empty."""


class InvalidSignature(SignatureError):
    """The signature is malformed or does not match the body (tampered, or the wrong secret)."""


class StaleSignature(SignatureError):
    """The signature matches, but its timestamp is outside the tolerance: a possible replay."""


class UnsupportedTopic(Exception):
    """A topic or event type no journey uses (the API answers 200 "ignored")."""


class InvalidPayload(ValueError):
    """A signed payload lacks what its topic must carry (an ID, a timestamp, a user)."""
