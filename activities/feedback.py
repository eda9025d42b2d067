"""What an ESP reports back about our email, applied once: bounces, complaints, unsubscribes.

The webhooks (starter/feedback.py) turn each vendor's event into a `Feedback`; here each is
matched to the message it is about and its effect applied, in one transaction with its record:

- a hard bounce or a complaint suppresses the address for every journey: a keyed hash in
  `email_suppressions` (reason "hard_bounce" or "complaint"; the send activity checks it
  before every marketing email, whoever holds the address), and the `email_suppressed` trait
  on the profile it was sent to, so the next step is skipped `address_suppressed`;
- an unsubscribe at the ESP unsubscribes the user here (profiles.email_unsubscribed_at, as our
  own link does; never the other way: only the subscription API subscribes again); for an
  address no profile holds, the address is suppressed instead, reason "unsubscribed";
- a soft bounce changes nothing: it is counted.

The message is found by our key, which every provider carries back (SendGrid's custom args,
Postmark's and Mandrill's metadata: `idempotency_key`), else by the provider's message ID we
stored (outbox.provider_message_id; SendGrid's event ID extends it with `.filter…`), else only
the address is known. Each event is recorded once (`message_events.dedupe_key`): a replayed
or duplicated webhook has one effect.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from activities.erasure import SUPPRESSIONS, address_hash
from activities.store import MessageEvent, OutboxMessage, ProfileRow, Store, utcnow

log = logging.getLogger("journeys.feedback")

Kind = Literal["bounce", "soft_bounce", "complaint", "unsubscribe"]
SUPPRESSING = {"bounce": "hard_bounce", "complaint": "complaint"}
"""Kinds that suppress the address for every journey, and the suppression's reason."""
PROVIDER = {"sendgrid": "sendgrid", "postmark": "postmark", "mandrill": "mailchimp"}
"""The outbox's provider name for each webhook's messages (Mandrill sends as "mailchimp")."""

_OUTBOX = OutboxMessage.__table__  # type: ignore[attr-defined]
_PROFILES = ProfileRow.__table__  # type: ignore[attr-defined]
_EVENTS = MessageEvent.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Feedback:
    """One ESP event about one email, in our terms."""

    source: str
    """"sendgrid", "postmark" or "mandrill"."""
    kind: Kind
    event_id: str
    """The vendor's own identity for the event: what makes a replay a duplicate."""
    address: str | None
    at: datetime
    idempotency_key: str | None = None
    """Our key, from the custom args or metadata we sent."""
    provider_message_id: str | None = None
    detail: str | None = None
    """The vendor's name for it ("HardBounce", "blocked"): never its free text."""


def apply_feedback(store: Store, secret: str, events: list[Feedback]) -> list[bool]:
    """Apply each event once; per event, True if this call applied it, False for a duplicate.
    `secret` keys the suppression list (JOURNEYS_SECRET_KEY, as the send activity's)."""
    return [_apply_once(store, secret, event) for event in events]


def _apply_once(store: Store, secret: str, event: Feedback) -> bool:
    dedupe = f"{event.source}:{event.event_id}"[:255]
    for _ in range(3):  # a concurrent delivery of the same event loses the insert once
        try:
            with store.engine.begin() as conn:
                if conn.dialect.name == "sqlite":  # write-locked before the reads
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                seen = conn.execute(
                    select(_EVENTS.c.id).where(_EVENTS.c.dedupe_key == dedupe)
                ).first()
                if seen is not None:
                    return False
                _apply(conn, secret, event, dedupe)
                return True
        except IntegrityError:
            continue
    raise RuntimeError(f"could not record {event.source} event {event.event_id!r}")


def _apply(conn: Connection, secret: str, event: Feedback, dedupe: str) -> None:
    message = find_message(conn, event)
    address = event.address or (message["recipient"] if message is not None else None)
    row: dict[str, Any] = {
        "dedupe_key": dedupe,
        "kind": event.kind,
        "source": event.source,
        "detail": (event.detail or "")[:64] or None,
        "at": event.at,
        "received_at": utcnow(),
    }
    users: list[str] = []
    if message is not None:
        seq = str(message["idempotency_key"]).rsplit("/", 1)[-1]
        row |= {
            "message_key": f"{message['run_id']}/{seq}"[:96],
            "run_id": message["run_id"],
            "journey": message["journey"],
            "step": message["template"],
            "variant": message["variant"],
            "user_id": message["user_id"],
        }
        users = [message["user_id"]]
    elif address:
        users = _holders(conn, address)
    conn.execute(_EVENTS.insert().values(**row))
    if event.kind in SUPPRESSING and address:
        _suppress(conn, secret, address, SUPPRESSING[event.kind])
        for user in users:
            _mark_suppressed(conn, user, address, f"{event.source} {event.kind}")
    elif event.kind == "unsubscribe":
        source = message["journey"] if message is not None else event.source
        for user in users:
            _unsubscribe(conn, user, source)
        if not users and address:
            _suppress(conn, secret, address, "unsubscribed")
    log.info(
        "%s %s %s", event.source, event.kind, "matched" if message is not None else "unmatched"
    )


def find_message(conn: Connection, event: Feedback) -> Any:
    """The outbox row the event is about (a mapping), or None."""
    columns = [
        _OUTBOX.c.idempotency_key, _OUTBOX.c.run_id, _OUTBOX.c.journey, _OUTBOX.c.template,
        _OUTBOX.c.variant, _OUTBOX.c.user_id, _OUTBOX.c.recipient,
    ]  # fmt: skip
    if event.idempotency_key:
        found = conn.execute(
            select(*columns).where(_OUTBOX.c.idempotency_key == event.idempotency_key[:255])
        ).first()
        if found is not None:
            return found._mapping
    if event.provider_message_id:
        candidates = message_id_prefixes(event.provider_message_id)
        found = conn.execute(
            select(*columns)
            .where(
                _OUTBOX.c.provider_message_id.in_(candidates),
                _OUTBOX.c.provider == PROVIDER.get(event.source, event.source),
            )
            .order_by(func.length(_OUTBOX.c.provider_message_id).desc())
            .limit(1)
        ).first()
        if found is not None:
            return found._mapping
    return None


def message_id_prefixes(message_id: str) -> list[str]:
    """The provider's message ID and each of its dot-separated prefixes: SendGrid's events
    carry `sg_message_id`, the X-Message-Id its API answered with `.filter…` (or `.recvd…`)
    appended, and an older X-Message-Id may itself hold dots."""
    parts = message_id[:255].split(".")
    return [".".join(parts[:n]) for n in range(len(parts), 0, -1)][:8]


def _holders(conn: Connection, address: str) -> list[str]:
    """The users whose profile has this address (compared without case)."""
    query = select(_PROFILES.c.user_id).where(
        func.lower(_PROFILES.c.email) == address.strip().lower()
    )
    return [str(user) for user in conn.execute(query).scalars()]


def _suppress(conn: Connection, secret: str, address: str, reason: str) -> None:
    key = address_hash(secret, address)
    exists = conn.execute(
        select(SUPPRESSIONS.c.address_hash).where(SUPPRESSIONS.c.address_hash == key)
    ).first()
    if exists is None:
        conn.execute(SUPPRESSIONS.insert().values(address_hash=key, reason=reason, since=utcnow()))


def _mark_suppressed(conn: Connection, user_id: str, address: str, reason: str) -> None:
    """The `email_suppressed` trait on the user's profile while it still holds the address:
    the next step is skipped `address_suppressed`, as after a provider's refusal."""
    found = conn.execute(  # locked as upsert_profile locks it, so neither write is lost
        select(_PROFILES.c.email, _PROFILES.c.traits)
        .where(_PROFILES.c.user_id == user_id)
        .with_for_update()
    ).first()
    if found is None or (found.email or "").strip().lower() != address.strip().lower():
        return
    traits = dict(found.traits or {})
    if traits.get("email_suppressed") is True:
        return
    traits |= {"email_suppressed": True, "suppressed_reason": reason}
    conn.execute(
        update(_PROFILES)
        .where(_PROFILES.c.user_id == user_id)
        .values(traits=traits, updated_at=utcnow())
    )


def _unsubscribe(conn: Connection, user_id: str, source: str) -> None:
    """As the unsubscribe link does (set_subscription), unless already unsubscribed."""
    now = utcnow()
    conn.execute(
        update(_PROFILES)
        .where(_PROFILES.c.user_id == user_id, _PROFILES.c.email_unsubscribed_at.is_(None))
        .values(email_unsubscribed_at=now, email_unsubscribed_from=source[:255], updated_at=now)
    )
