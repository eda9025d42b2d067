"""Who must not get a message now, and why: consent, frequency cap and quiet hours.

Pure functions of the profile and the journey's clock, so the send activity can check them
before every send and record the reason, and tests can check them without a database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

OPT_OUT_TRAITS = ("unsubscribed", "email_unsubscribed")
"""True (or "true", "yes", 1) on any of these in an identify: the user is unsubscribed, recorded
apart from traits (profiles.email_unsubscribed_at), so a later `false` cannot undo it."""

CONSENT_TRAITS = ("email_consent", "marketing_consent", "consent", "email_opt_in")
"""False on any of these: no marketing email (consent withdrawn through identify)."""


def opts_out(traits: dict[str, Any]) -> bool:
    """Whether these traits say "unsubscribed", as senders write it: true, "true", "yes", 1."""
    return any(_truthy(traits.get(key)) for key in OPT_OUT_TRAITS)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1", "y")
    return value is True or (type(value) is int and value == 1)


def opted_out(traits: dict[str, Any], unsubscribed: bool = False) -> str | None:
    """The reason marketing mail must not go to this profile, or None; `unsubscribed`: the
    profile's subscription state (the link, or the subscription API) says so."""
    if traits.get("email_suppressed") is True:  # the provider called the address bad
        return "address_suppressed"
    if unsubscribed or opts_out(traits):
        return "unsubscribed"
    for key in CONSENT_TRAITS:
        if key in traits and traits[key] in (False, "false", "no", 0):
            return "no_consent"
    return None


@dataclass(frozen=True)
class QuietHours:
    """A nightly window, in the user's local time, when marketing sends wait (21:00-08:00)."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietHours | None:
        """ "21:00-08:00" -> QuietHours; "" -> None (no quiet hours)."""
        if not text.strip():
            return None
        try:
            start, end = (time.fromisoformat(part.strip()) for part in text.split("-"))
        except ValueError as err:
            raise ValueError(f"quiet hours must look like 21:00-08:00, got {text!r}") from err
        return cls(start, end)

    def contains(self, local: time) -> bool:
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # the window crosses midnight

    def ends_after(
        self, at: datetime, timezone: str | None, default: str = "UTC"
    ) -> datetime | None:
        """When the window that holds `at` ends (aware, in UTC terms), or None if `at` is fine."""
        zone = _zone(timezone) or _zone(default) or ZoneInfo("UTC")
        local = at.astimezone(zone)
        if not self.contains(local.time()):
            return None
        end = local.replace(hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0)
        if end <= local:
            end += timedelta(days=1)
        return end.astimezone(at.tzinfo)


def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
