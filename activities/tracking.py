"""Clicks and opens: the signed links and pixel an email carries, and what they record.

At send time (activities/sending.py) every http(s) link in an email's HTML becomes
`<public_url>/c/<token>` and an open pixel `<public_url>/o/<token>.gif` is added; the
unsubscribe link is left alone, and so is the text part. A token is `<payload>.<signature>`:
the payload names the message (its run, the step's sequence number, journey, step and variant)
and, for a link, its target; the signature is the first 160 bits of HMAC-SHA256 with
JOURNEYS_SECRET_KEY over a purpose label and the payload. So a token cannot be made or altered
without the key, an open token is no link (nor is either an unsubscribe token), and the target
is inside what is signed, never a parameter: the redirect cannot be pointed anywhere else.

The user is not in the token: the run leads to them (an erasure's tombstone replaces them
there), so a forwarded link says nothing about who got it. The redirect (starter/tracking.py)
records through `record_engagement`, once per message and link (a click) or per message (an
open), so reloading a page or an image counts once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import datetime
from html import escape, unescape
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from activities.store import JourneyRun, MessageEvent, Store, utcnow

MAX_URL = 2000
"""The longest target a link keeps (longer ones are left as they are, untracked)."""

_RUNS = JourneyRun.__table__  # type: ignore[attr-defined]
_EVENTS = MessageEvent.__table__  # type: ignore[attr-defined]
_HREF = re.compile(r"""(<a\b[^>]*?\shref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")
"""Characters no target may hold: controls and whitespace (a header split, a trimmed URL read
differently by the browser), and backslashes (`https:\\evil` is a different host to browsers)."""


class InvalidTrackingToken(Exception):
    """The link or pixel was altered, truncated, signed with another key, or is for another
    purpose; or its target is not an http(s) URL."""


@dataclass(frozen=True)
class TrackedMessage:
    """The message a link or pixel belongs to: what a click or an open is recorded against."""

    run_id: str
    seq: int
    journey: str
    step: str
    variant: str | None = None

    @property
    def key(self) -> str:
        """`<run_id>/<seq>`: the message, as MessageEvent.message_key names it."""
        return f"{self.run_id}/{self.seq}"


# Tokens -----------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, purpose: str, payload: str) -> bytes:
    signed = f"journeys-{purpose}:{payload}".encode()
    return hmac.new(secret.encode(), signed, hashlib.sha256).digest()[:20]


def _sign(secret: str, purpose: str, fields: list[object]) -> str:
    payload = _b64(json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode())
    return f"{payload}.{_b64(_mac(secret, purpose, payload))}"


def _verify(secret: str, purpose: str, token: str) -> list[object]:
    try:
        payload, signature = token.split(".")
        if not hmac.compare_digest(_unb64(signature), _mac(secret, purpose, payload)):
            raise InvalidTrackingToken("bad signature")
        fields = json.loads(_unb64(payload))
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidTrackingToken("malformed token") from err
    if not isinstance(fields, list) or not fields or fields[0] != 1:
        raise InvalidTrackingToken("unknown token version")
    return fields


def _message(fields: list[object]) -> TrackedMessage:
    _, run_id, seq, journey, step, variant = fields[:6]
    if not (
        isinstance(run_id, str)
        and type(seq) is int
        and isinstance(journey, str)
        and isinstance(step, str)
        and (variant is None or isinstance(variant, str))
    ):
        raise InvalidTrackingToken("malformed token")
    return TrackedMessage(run_id, seq, journey, step, variant)


def _fields(message: TrackedMessage) -> list[object]:
    return [1, message.run_id, message.seq, message.journey, message.step, message.variant]


def click_token(secret: str, message: TrackedMessage, url: str) -> str:
    """The token of a tracked link to `url` in `message`."""
    return _sign(secret, "click", [*_fields(message), url])


def open_token(secret: str, message: TrackedMessage) -> str:
    """The token of `message`'s open pixel."""
    return _sign(secret, "open", _fields(message))


def read_click(secret: str, token: str) -> tuple[TrackedMessage, str]:
    """The message and target of a link, or InvalidTrackingToken (also for a target that is
    not a safe http(s) URL, should one ever have been signed)."""
    fields = _verify(secret, "click", token)
    if len(fields) != 7 or not isinstance(fields[6], str) or not safe_target(fields[6]):
        raise InvalidTrackingToken("malformed token")
    return _message(fields), fields[6]


def read_open(secret: str, token: str) -> TrackedMessage:
    fields = _verify(secret, "open", token)
    if len(fields) != 6:
        raise InvalidTrackingToken("malformed token")
    return _message(fields)


def safe_target(url: str) -> bool:
    """An absolute http(s) URL with a host, nothing a browser could read as another one."""
    if not url or len(url) > MAX_URL or _UNSAFE.search(url):
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is no port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


# Rewriting an email ---------------------------------------------------------------------------


def track_email(
    html: str,
    *,
    message: TrackedMessage,
    public_url: str,
    secret: str,
    clicks: bool = True,
    opens: bool = True,
    keep: frozenset[str] = frozenset(),
) -> str:
    """The HTML with each http(s) link through the signed redirect and the open pixel added.

    Left alone: `keep` (the unsubscribe link), anything else under the unsubscribe path or
    already tracked, links that are not http(s) (mailto:, tel:, #anchors) or not safe.
    """
    base = public_url.rstrip("/")
    own = (f"{base}/u/", f"{base}/c/", f"{base}/o/")

    def rewrite(found: re.Match[str]) -> str:
        target = unescape(found.group(3)).strip()
        if target in keep or target.startswith(own) or not safe_target(target):
            return found.group(0)
        tracked = f"{base}/c/{click_token(secret, message, target)}"
        return f"{found.group(1)}{found.group(2)}{escape(tracked)}{found.group(2)}"

    if clicks:
        html = _HREF.sub(rewrite, html)
    if opens:
        pixel = (
            f'<img src="{escape(base)}/o/{open_token(secret, message)}.gif" width="1" height="1" '
            'alt="" style="display:block;width:1px;height:1px;border:0">'
        )
        ends = list(_BODY_END.finditer(html))
        if ends:
            at = ends[-1].start()
            html = f"{html[:at]}{pixel}{html[at:]}"
        else:
            html += pixel
    return html


_PIXEL = re.compile(r"""<img\s+src="[^"]*/o/[A-Za-z0-9_.\-]+\.gif"[^>]*>""", re.IGNORECASE)
_CLICK = re.compile(r"/c/([A-Za-z0-9_.\-]+)$")


def untracked(html: str, secret: str | None) -> str:
    """A sent email's HTML as it was written: each tracked link back to its own target and no
    open pixel, so reading it in the local outbox records neither a click nor an open."""

    def restore(found: re.Match[str]) -> str:
        link = _CLICK.search(unescape(found.group(3)).strip())
        if link is None or secret is None:
            return found.group(0)
        try:
            _, target = read_click(secret, link.group(1))
        except InvalidTrackingToken:
            return found.group(0)
        return f"{found.group(1)}{found.group(2)}{escape(target)}{found.group(2)}"

    return _HREF.sub(restore, _PIXEL.sub("", html))


# Recording ---------------------------------------------------------------------------------------


def stored_url(url: str) -> str:
    """A target as recorded: scheme, host and path; its query, fragment and any credentials
    (a cart link's token, a tracking ID) are not kept."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))[:MAX_URL]


def record_engagement(
    store: Store,
    kind: str,
    message: TrackedMessage,
    url: str | None = None,
    at: datetime | None = None,
) -> bool:
    """Record a click (with its target) or an open of `message`, once per message and link or
    per message; False when it was already recorded. The user is the run's."""
    key = f"{kind}:{message.key}"
    if url is not None:
        key += ":" + hashlib.sha256(url.encode()).hexdigest()[:16]
    with store.engine.connect() as conn:
        user_id = conn.execute(
            select(_RUNS.c.user_id).where(_RUNS.c.run_id == message.run_id)
        ).scalar_one_or_none()
    row = MessageEvent(
        dedupe_key=key[:255],
        kind=kind,
        source="tracking",
        message_key=message.key,
        run_id=message.run_id[:64],
        journey=message.journey[:64],
        step=message.step[:255],
        variant=message.variant[:64] if message.variant else None,
        user_id=user_id,
        url=stored_url(url) if url is not None else None,
        at=at or utcnow(),
    )
    try:
        with store.engine.begin() as conn:
            conn.execute(_EVENTS.insert().values(**row.model_dump(exclude={"id"})))
    except IntegrityError:
        return False
    return True
