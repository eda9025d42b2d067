"""Kissmetrics' tracking API: the calls a site already sends to trk.kissmetrics.io, taken as is.

A site points its calls at /v1/sources/kissmetrics instead of https://trk.kissmetrics.io and
changes nothing else (Kissmetrics' API specifications):

    /e  record an event    _k key, _p person, _n event name           -> track
    /s  set properties     _k key, _p person                          -> identify
    /a  alias              _k key, _p one identity, _n another one    -> a link between them

`_t` is the time in Unix seconds, used only with `_d=1` (else the time we received it); every
other parameter is a property (of the event, for /e; of the person, for /s). Parameters come
as a query string (GET) or a form-encoded body (POST). As Kissmetrics does, commas and colons
in `_p` and `_n` become spaces, so identities and event names are the ones its reports show.

Dedupe: Kissmetrics calls carry no message ID. Kissmetrics itself counts a call once per
identity, event name, timestamp and properties; the message ID here is a digest of the same
(the call kind, `_p`, `_n`, `_t` and the sorted properties): a browser's or library's retry
dedupes, while the same event at another second is another event. Without `_t` the second we
received it stands in, as Kissmetrics uses its own receipt time.

Identities: an identity that is an email address (Kissmetrics' docs name it the usual one) is
also the person's `email` trait, so journeys can write to them. An alias links one identity
to the user the other names, in the user_aliases table (kind "kissmetrics"), and later calls
from either identity reach that user (`resolve`); nothing is merged after the fact.

Pure, like the other vendor modules: the API layer (routes.py) reads the request, looks the
links up and takes the calls.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import parse_qsl

from activities.addresses import email_address
from starter.sources.errors import InvalidPayload, InvalidSignature, MissingSignature
from starter.sources.models import SourceCall, build

__all__ = [
    "ALIAS_KIND",
    "KINDS",
    "PIXEL",
    "BadParameter",
    "KissmetricsCall",
    "MalformedCall",
    "alias_link",
    "kind_of",
    "kissmetrics_calls",
    "message_id",
    "parameter_of",
    "parse_params",
    "read_call",
    "resolve",
    "verify_key",
    "verify_kissmetrics",
]

Kind = Literal["e", "s", "a"]
KINDS: tuple[Kind, ...] = ("e", "s", "a")
"""The paths: record an event, set properties, alias."""

RESERVED = frozenset({"_k", "_p", "_n", "_t", "_d"})
"""The parameters Kissmetrics' API defines; any other is a property."""

ALIAS_KIND = "kissmetrics"
"""The user_aliases kind an alias is stored under."""

MAX_IDENTITY = 255
"""Characters in `_p` (and an alias's `_n`), as Kissmetrics documents."""
MAX_EVENT = 200
"""Characters in an event name: ours (Kissmetrics allows 255)."""
MAX_PARAMETERS = 500
"""Parameters in one call; a URL or form with more is refused (400)."""
MAX_LINKS = 8
"""Alias links followed from an identity: more only if aliases were racing; stop anyway."""

PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
"""Kissmetrics answers every call with a 1x1 GIF (its "Beacon API"): so do we, for a pixel."""

_SECONDS = re.compile(r"\d{1,12}")


class MalformedCall(InvalidPayload):
    """The query or body cannot be read as parameters at all (400)."""


class BadParameter(InvalidPayload):
    """One parameter is missing or wrong (422); `parameter` names it, never its value."""

    def __init__(self, parameter: str, reason: str) -> None:
        super().__init__(f"{parameter}: {reason}")
        self.parameter = parameter
        self.reason = reason


@dataclass(frozen=True)
class KissmetricsCall:
    """One tracking call, read: what it is, about whom, when, with which properties."""

    kind: Kind
    person: str
    """`_p`, commas and colons made spaces."""
    name: str | None
    """`_n`: the event name (/e) or the other identity (/a); None for /s."""
    sent_at: int | None
    """`_t` as sent, in Unix seconds (part of the dedupe key whether or not `_d=1`)."""
    timestamp: datetime | None
    """When it happened, if the caller said so (`_t` with `_d=1`); else when we received it."""
    properties: dict[str, str] = field(default_factory=dict)


def kind_of(path: str) -> Kind | None:
    """The call a path's last part names (`e`, `s`, `a`), else None."""
    return next((kind for kind in KINDS if kind == path), None)


def parse_params(query: bytes, body: bytes) -> dict[str, str]:
    """The call's parameters from its query string and form body together; MalformedCall if
    either is not UTF-8 form encoding or has too many, BadParameter for a repeated or empty
    name or a NUL character (no store can keep one)."""
    pairs: list[tuple[str, str]] = []
    for part in (query, body):
        if not part:
            continue
        try:
            text = part.decode("utf-8")
            pairs += parse_qsl(
                text,
                keep_blank_values=True,
                encoding="utf-8",
                errors="strict",
                max_num_fields=MAX_PARAMETERS,
            )
        except UnicodeDecodeError:
            raise MalformedCall("parameters are not UTF-8") from None
        except ValueError:
            raise MalformedCall(f"more than {MAX_PARAMETERS} parameters") from None
    if len(pairs) > MAX_PARAMETERS:
        raise MalformedCall(f"more than {MAX_PARAMETERS} parameters")
    params: dict[str, str] = {}
    for name, value in pairs:
        if not name.strip():
            raise BadParameter("(no name)", "a parameter needs a name")
        if "\x00" in name:
            raise BadParameter("(name)", "a NUL character in a parameter name")
        if name in params:
            raise BadParameter(name, "given more than once")
        if "\x00" in value:
            raise BadParameter(name, "a NUL character")
        params[name] = value
    return params


def verify_key(given: str | None, secret: str) -> None:
    """Check `_k` against our key in constant time; a SignatureError if it is absent or not it."""
    if not given:
        raise MissingSignature("_k (the site's Kissmetrics key) is missing")
    if not hmac.compare_digest(given.encode(), secret.encode()):
        raise InvalidSignature("_k is not the key this source is set up with")


def verify_kissmetrics(headers: Mapping[str, str], body: bytes, secret: str) -> None:
    """The API's gate, before a POST takes an ingest slot: `_k` in the form body must be ours.

    A body that does not read as a form, or has no `_k` (the query string may carry it), is
    left to the route, which checks the key wherever it is and answers what is wrong.
    """
    try:
        params = parse_params(b"", body)
    except InvalidPayload:
        return
    if "_k" in params:
        verify_key(params["_k"], secret)


def read_call(kind: Kind, params: Mapping[str, str]) -> KissmetricsCall:
    """The call `params` make on path `kind`; BadParameter naming what is missing or wrong."""
    person = _identity(params.get("_p"), "_p")
    name: str | None = None
    if kind == "e":
        name = _spaced(params.get("_n") or "").strip()
        if not name:
            raise BadParameter("_n", "the event name is required")
        if len(name) > MAX_EVENT:
            raise BadParameter("_n", f"at most {MAX_EVENT} characters")
    elif kind == "a":
        name = _identity(params.get("_n"), "_n")
    sent_at = None
    raw_time = params.get("_t")
    if raw_time is not None and raw_time != "":
        if not _SECONDS.fullmatch(raw_time):
            raise BadParameter("_t", "must be Unix seconds (an integer)")
        sent_at = int(raw_time)
    timestamp = None
    if params.get("_d") == "1":
        if sent_at is None:
            raise BadParameter("_t", "required with _d=1")
        try:
            timestamp = datetime.fromtimestamp(sent_at, UTC)
        except (OverflowError, OSError, ValueError):
            raise BadParameter("_t", "is not a time") from None
    properties = {} if kind == "a" else {k: v for k, v in params.items() if k not in RESERVED}
    return KissmetricsCall(kind, person, name, sent_at, timestamp, properties)


def message_id(call: KissmetricsCall, received_at: datetime) -> str:
    """A stable ID for the call: its kind, identities, time and properties, digested (see the
    module docstring); the receipt second stands in for a missing `_t`."""
    moment = call.sent_at if call.sent_at is not None else int(received_at.timestamp())
    canonical = json.dumps(
        [call.kind, call.person, call.name, moment, sorted(call.properties.items())],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
    return f"kissmetrics:{call.kind}:{digest[:40]}"


def kissmetrics_calls(
    call: KissmetricsCall, user_id: str, received_at: datetime
) -> list[SourceCall]:
    """The calls to take for `user_id` (the user `_p` resolves to): a track for /e, an identify
    for /s, and for /a an identify only when one identity is an email address."""
    fields = {
        "user_id": user_id,
        "message_id": message_id(call, received_at),
        "timestamp": call.timestamp or received_at,
    }
    if call.kind == "e":
        context = {"traits": {"email": call.person}} if email_address(call.person) else {}
        return [
            build(
                type="track",
                event=call.name,
                properties=dict(call.properties),
                context=context,
                **fields,
            )
        ]
    if call.kind == "s":
        traits: dict[str, str] = dict(call.properties)
        if "email" not in traits and email_address(call.person):
            traits["email"] = call.person
        return [build(type="identify", traits=traits, **fields)]
    email = next((i for i in (call.name, call.person) if email_address(i)), None)
    return [build(type="identify", traits={"email": email}, **fields)] if email else []


Lookup = Callable[[str], str | None]
"""An identity's direct link: the user ID it was aliased to, else None."""


def resolve(identity: str, lookup: Lookup) -> str:
    """The user an identity names: followed through its alias links, else the identity itself."""
    seen = {identity}
    current = identity
    for _ in range(MAX_LINKS):
        linked = lookup(current)
        if linked is None or linked in seen:
            break
        seen.add(linked)
        current = linked
    return current


def alias_link(person: str, other: str, lookup: Lookup) -> tuple[str, str] | None:
    """The link an alias adds, as (identity, user ID), or None when there is nothing to add.

    `other` (`_n`) becomes another name of the user `person` (`_p`) names, unless it already
    has a link; then `person` becomes another name of `other`'s user, unless it has one too:
    two identities each already linked name two users, and users are never merged (their
    journeys and profiles stay apart). An identity is linked at most once (the first alias
    wins, as Kissmetrics' own aliases cannot be undone)."""
    mine, theirs = resolve(person, lookup), resolve(other, lookup)
    if mine == theirs:
        return None
    if lookup(other) is None:
        return other, mine
    if lookup(person) is None:
        return person, theirs
    return None


def parameter_of(location: Sequence[str | int]) -> str:
    """The Kissmetrics parameter a mapped call's invalid field came from (`location` as pydantic
    gives it, without the call type): a property's own name, `_p` for the user, `_n` for the
    event, `_t` for the time."""
    path = [str(part) for part in location]
    if path[:1] in (["properties"], ["traits"]) and len(path) > 1:
        return path[1]
    if path[:1] == ["event"]:
        return "_n"
    if path[:1] in (["timestamp"], ["originalTimestamp"]):
        return "_t"
    return "_p"  # the user ID, or the email trait taken from the identity


def _identity(value: str | None, parameter: str) -> str:
    identity = _spaced(value or "").strip()
    if not identity:
        raise BadParameter(parameter, "the identity is required")
    if len(identity) > MAX_IDENTITY:
        raise BadParameter(parameter, f"at most {MAX_IDENTITY} characters")
    return identity


def _spaced(text: str) -> str:
    """Commas and colons as spaces, as Kissmetrics stores `_p` and `_n`."""
    return text.replace(",", " ").replace(":", " ")
