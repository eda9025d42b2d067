"""Phone numbers for SMS: read as E.164 (what Twilio takes), and kept only as a keyed hash
where no profile needs them (sms_opt_outs).

    e164("(415) 555-0100", "US")   -> "+14155550100"
    e164("+44 20 7946 0958")       -> "+442079460958"
    e164("call me")                -> None   (recorded "invalid_address", never sent)

Parsing is Google's libphonenumber (the `phonenumbers` package), not a regular expression: it
knows each country's lengths and prefixes, so "+1 555 0100" (too short) is refused here
rather than by Twilio after the attempt.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import phonenumbers


def e164(value: Any, default_region: str = "US") -> str | None:
    """The number in E.164 form, or None when it is not one valid phone number. A number
    without a country code is read in `default_region` (JOURNEYS_SMS_DEFAULT_REGION)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        return None
    try:
        number = phonenumbers.parse(value, default_region.upper() or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phone_hash(secret: str, number: str) -> str:
    """HMAC-SHA256 (hex) of an E.164 number: how sms_opt_outs keys a number without holding it."""
    return hmac.new(secret.encode(), number.encode(), hashlib.sha256).hexdigest()


PHONE_TRAITS = ("phone", "phone_number", "mobile")
"""Traits a profile's phone number is read from, in order (Segment's spec names `phone`)."""


def profile_phone(traits: dict[str, Any], default_region: str = "US") -> str | None:
    """The user's number for SMS, from the first phone trait that holds a valid one."""
    for key in PHONE_TRAITS:
        if traits.get(key) not in (None, ""):
            return e164(traits[key], default_region)
    return None
