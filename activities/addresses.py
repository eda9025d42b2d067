"""What counts as an email address we will mail: exactly one mailbox, checked the same way where
it comes in (identify, sources) and where it goes out (the send)."""

from __future__ import annotations

import re
from email.headerregistry import Address

_ATEXT = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def email_address(value: object) -> str | None:
    """`value` when it is exactly one mailbox, `local@domain`, else None.

    One rule for the API (identify) and the send: a provider reads its `To` as a list, so
    "v@x.com, a@evil.com" (or a display name, a comment, a quoted local part, a line break)
    would mail whoever the sender wrote in. The standard library parses it as an RFC 5322
    addr-spec and must give back the same text; on top, the local part is a dot-atom and the
    domain a host name (no IP literal), each within RFC 5321's lengths.
    """
    if not isinstance(value, str) or not 3 <= len(value) <= 254 or value.count("@") != 1:
        return None
    try:
        parsed = Address(addr_spec=value)
    except Exception:  # the parser's errors are several unrelated classes; any means "no"
        return None
    local, _, domain = value.partition("@")
    if parsed.addr_spec != value or len(local) > 64 or len(domain) > 253:
        return None
    if not all(_ATEXT.fullmatch(atom) for atom in local.split(".")):
        return None
    return value if all(_host_label(label) for label in domain.split(".")) else None


def _host_label(label: str) -> bool:
    """A DNS label: letters, digits and inner hyphens, or an internationalised one (IDNA)."""
    if label.isascii():
        return _LABEL.fullmatch(label) is not None
    try:
        return _LABEL.fullmatch(label.encode("idna").decode("ascii")) is not None
    except UnicodeError:
        return False
