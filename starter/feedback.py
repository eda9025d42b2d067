"""POST /v1/feedback/{sendgrid,postmark,mandrill}: what the ESP tells us about our email.

Each vendor's webhook, authenticated its own way, is read into `Feedback` events (a hard
bounce, a soft bounce, a complaint, an unsubscribe) and applied once (activities/feedback.py):

    SendGrid   Event Webhook, JSON array; signed: ECDSA P-256 over the
               X-Twilio-Email-Event-Webhook-Timestamp header and the raw body, checked with the
               verification key (JOURNEYS_SENDGRID_WEBHOOK_PUBLIC_KEY), signature in
               X-Twilio-Email-Event-Webhook-Signature; dedupe on sg_event_id
    Postmark   Bounce, Spam Complaint and Subscription Change webhooks, one JSON object each;
               Postmark does not sign: the webhook URL carries basic auth credentials
               (JOURNEYS_POSTMARK_WEBHOOK_USER / _PASSWORD); dedupe on the bounce ID
    Mandrill   form field `mandrill_events` (a JSON array); X-Mandrill-Signature: base64
               HMAC-SHA1 with the webhook key (JOURNEYS_MANDRILL_WEBHOOK_KEY) over the webhook
               URL exactly as configured there, then each POST field's name and value, sorted

Answers: 404 until the vendor's setting is set; 401 for a missing or wrong signature or
credential (never echoing it); 400 for a body that is not the vendor's encoding; 422 for a
signed body that is not the vendor's shape, naming the field; 503 with Retry-After when the
database cannot take it (the vendor retries, dedupe keeps it single); 200 otherwise, with how
many events were applied, were duplicates, or were ignored (deliveries, opens: ours are
counted by our own pixel and redirect). Klaviyo has no route: see docs/delivery.md.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, OperationalError

from activities.feedback import Feedback, Kind, apply_feedback
from starter.calls import nul_at, parse_json, read_body
from starter.settings import Settings, signing_key
from starter.sources.signing import unix_seconds

router = APIRouter(prefix="/v1/feedback", include_in_schema=False)

SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
MANDRILL_SIGNATURE = "X-Mandrill-Signature"
MANDRILL_PATH = "/v1/feedback/mandrill"


class Refused(Exception):
    """The request is answered `status` with `detail` (and `errors` naming fields)."""

    def __init__(
        self,
        status: int,
        detail: str,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.detail, self.errors, self.headers = status, detail, errors, headers

    def answer(self) -> JSONResponse:
        body: dict[str, Any] = {"detail": self.detail}
        if self.errors:
            body["errors"] = self.errors
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def _bad(field: str, error: str) -> Refused:
    """422 naming the field, never its value."""
    return Refused(422, "payload not understood", [{"field": field, "error": error}])


# SendGrid ----------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def load_sendgrid_key(text: str) -> ec.EllipticCurvePublicKey:
    """The verification key as SendGrid shows it (base64 DER, no PEM armour), or PEM;
    ValueError if it is neither an elliptic curve public key."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = load_pem_public_key(text.encode())
        else:
            key = load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, binascii.Error, TypeError) as err:
        raise ValueError("not a public key in base64 DER or PEM") from err
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("not an elliptic curve (ECDSA) public key")
    return key


def verify_sendgrid(headers: Mapping[str, str], body: bytes, public_key: str) -> None:
    """Refused(401) unless the ECDSA signature over timestamp + raw body holds."""
    signature = (headers.get(SENDGRID_SIGNATURE) or "").strip()
    timestamp = (headers.get(SENDGRID_TIMESTAMP) or "").strip()
    if not signature or not timestamp:
        raise Refused(401, f"signature rejected: missing {SENDGRID_SIGNATURE} or its timestamp")
    if unix_seconds(timestamp) is None:
        raise Refused(401, "signature rejected: the timestamp is not Unix seconds")
    try:
        raw = base64.b64decode(signature, validate=True)
        load_sendgrid_key(public_key).verify(
            raw, timestamp.encode() + body, ec.ECDSA(hashes.SHA256())
        )
    except (InvalidSignature, binascii.Error, ValueError) as err:
        raise Refused(401, "signature rejected: it does not match the body") from err


def sendgrid_events(payload: Any) -> list[Feedback]:
    """SendGrid's events in our terms; the others (processed, delivered, deferred, open, click,
    group_resubscribe) are not feedback we act on."""
    if not isinstance(payload, list):
        raise _bad("", "expected a JSON array of events")
    found = []
    for index, event in enumerate(payload):
        if not isinstance(event, dict):
            raise _bad(str(index), "expected an event object")
        kind, detail = _sendgrid_kind(event)
        if kind is None:
            continue
        at = _unix_time(event.get("timestamp"))
        event_id = _text(event, "sg_event_id", index) or _digest(event)
        found.append(
            Feedback(
                source="sendgrid",
                kind=kind,
                event_id=event_id,
                address=_address(event, "email", index),
                at=at,
                idempotency_key=_text(event, "idempotency_key", index),
                provider_message_id=_text(event, "sg_message_id", index),
                detail=detail,
            )
        )
    return found


SENDGRID_DROPPED: dict[str, Kind] = {
    "Bounced Address": "bounce",
    "Invalid": "bounce",
    "Spam Reporting Address": "complaint",
    "Unsubscribed Address": "unsubscribe",
}
"""A drop for an address SendGrid itself suppressed: the reason it had."""


def _sendgrid_kind(event: dict[str, Any]) -> tuple[Kind | None, str | None]:
    name = event.get("event")
    if name == "bounce":
        if event.get("type") == "blocked":  # refused for now: SendGrid calls it a block
            return "soft_bounce", "blocked"
        return "bounce", "bounce"
    if name == "dropped":
        reason = event.get("reason")
        dropped = SENDGRID_DROPPED.get(reason) if isinstance(reason, str) else None
        return dropped, f"dropped: {reason}" if dropped else None
    if name in ("spamreport", "spam_report"):
        return "complaint", "spamreport"
    if name in ("unsubscribe", "group_unsubscribe"):
        return "unsubscribe", name
    return None, None


# Postmark ----------------------------------------------------------------------------------------


def verify_postmark(headers: Mapping[str, str], user: str, password: str) -> None:
    """Refused(401) unless HTTP Basic credentials match, compared in constant time."""
    scheme, _, value = (headers.get("authorization") or "").partition(" ")
    try:
        given = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        given = ""
    name, _, secret = given.partition(":")
    ok = hmac.compare_digest(name.encode(), user.encode())
    ok &= hmac.compare_digest(secret.encode(), password.encode())
    if scheme.lower() != "basic" or not ok:
        raise Refused(
            401,
            "credentials rejected: Postmark's webhook URL must carry the configured user and "
            "password (https://user:password@host/v1/feedback/postmark)",
            headers={"WWW-Authenticate": 'Basic realm="journeys feedback"'},
        )


POSTMARK_HARD = frozenset({"HardBounce", "BadEmailAddress", "ManuallyDeactivated"})
POSTMARK_COMPLAINT = frozenset({"SpamComplaint", "SpamNotification"})
POSTMARK_NOT_BOUNCES = frozenset(
    {"AutoResponder", "Subscribe", "OpenRelayTest", "AddressChange", "ChallengeVerification"}
)
"""Bounce types that are no failure to deliver: an out-of-office reply, a subscribe request."""
POSTMARK_SUPPRESSION: dict[str, Kind] = {
    "HardBounce": "bounce",
    "SpamComplaint": "complaint",
    "ManualSuppression": "unsubscribe",  # a recipient's unsubscribe is suppressed as this
}


def postmark_events(payload: Any) -> list[Feedback]:
    """One Postmark webhook's event in our terms (none for deliveries, opens and clicks)."""
    if not isinstance(payload, dict):
        raise _bad("", "expected a JSON object")
    record = payload.get("RecordType")
    metadata = payload.get("Metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise _bad("Metadata", "expected an object")
    key = _text(metadata or {}, "idempotency_key", "Metadata")
    message_id = _text(payload, "MessageID", "")
    kind: Kind | None = None
    if record in ("Bounce", "SpamComplaint") or (record is None and "TypeCode" in payload):
        kind_name = _text(payload, "Type", "")
        if record == "SpamComplaint" or kind_name in POSTMARK_COMPLAINT:
            kind = "complaint"
        elif kind_name in POSTMARK_HARD or payload.get("Inactive") is True:
            kind = "bounce"  # Postmark deactivated the address: it sends there no more
        elif kind_name == "Unsubscribe":
            kind = "unsubscribe"
        elif kind_name not in POSTMARK_NOT_BOUNCES:
            kind = "soft_bounce"
        if kind is None:
            return []
        bounce_id = payload.get("ID")
        if type(bounce_id) is not int and not isinstance(bounce_id, str):
            bounce_id = _digest(payload)
        return [
            Feedback(
                source="postmark",
                kind=kind,
                event_id=f"{record or 'Bounce'}:{bounce_id}",
                address=_address(payload, "Email", ""),
                at=_iso_time(payload.get("BouncedAt")),
                idempotency_key=key,
                provider_message_id=message_id,
                detail=kind_name or record,
            )
        ]
    if record == "SubscriptionChange":
        if payload.get("SuppressSending") is not True:  # a reactivation: never re-subscribes
            return []
        reason = _text(payload, "SuppressionReason", "")
        kind = POSTMARK_SUPPRESSION.get(reason or "")
        if kind is None:
            return []
        return [
            Feedback(
                source="postmark",
                kind=kind,
                event_id=f"SubscriptionChange:{_digest(payload)}",
                address=_address(payload, "Recipient", ""),
                at=_iso_time(payload.get("ChangedAt")),
                idempotency_key=key,
                provider_message_id=message_id,
                detail=reason,
            )
        ]
    return []


# Mandrill ----------------------------------------------------------------------------------------


def mandrill_signature(key: str, url: str, params: Mapping[str, str]) -> str:
    """X-Mandrill-Signature: base64 HMAC-SHA1 of the URL then each field's name and value,
    sorted by name."""
    signed = url + "".join(f"{name}{params[name]}" for name in sorted(params))
    return base64.b64encode(hmac.new(key.encode(), signed.encode(), hashlib.sha1).digest()).decode()


def mandrill_params(body: bytes) -> dict[str, str]:
    """The form fields, each once; Refused(400) for a body that is not form encoding."""
    try:
        pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError) as err:
        raise Refused(400, "body not understood: expected form fields (mandrill_events)") from err
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise Refused(400, f"body not understood: the field {name!r} is repeated")
        params[name] = value
    return params


def verify_mandrill(
    headers: Mapping[str, str], params: Mapping[str, str], key: str, url: str
) -> None:
    given = (headers.get(MANDRILL_SIGNATURE) or "").strip()
    expected = mandrill_signature(key, url, params)
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Refused(401, f"signature rejected: {MANDRILL_SIGNATURE} does not match")


MANDRILL_KINDS: dict[str, Kind] = {
    "hard_bounce": "bounce",
    "soft_bounce": "soft_bounce",
    "spam": "complaint",
    "unsub": "unsubscribe",
}


def mandrill_events(params: Mapping[str, str]) -> list[Feedback]:
    """Mandrill's message events in our terms; sends, deferrals, opens, clicks, rejects (the
    send's own answer, already acted on) and sync events are not feedback we act on."""
    if "mandrill_events" not in params:
        raise _bad("mandrill_events", "missing")
    try:
        payload = parse_json(params["mandrill_events"])
    except ValueError as err:
        raise Refused(400, "mandrill_events is not JSON") from err
    if nul_at(payload) is not None:
        raise _bad("mandrill_events", "a NUL character in a string")
    if not isinstance(payload, list):
        raise _bad("mandrill_events", "expected a JSON array of events")
    found = []
    for index, event in enumerate(payload):
        where = f"mandrill_events.{index}"
        if not isinstance(event, dict):
            raise _bad(where, "expected an event object")
        name = event.get("event")
        kind = MANDRILL_KINDS.get(name) if isinstance(name, str) else None
        if kind is None:
            continue
        msg = event.get("msg")
        if not isinstance(msg, dict):
            raise _bad(f"{where}.msg", "expected an object")
        metadata = msg.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise _bad(f"{where}.msg.metadata", "expected an object")
        message_id = _text(msg, "_id", f"{where}.msg") or _text(event, "_id", where)
        ts = event.get("ts", msg.get("ts"))
        at = _unix_time(ts)
        detail = _text(msg, "bounce_description", f"{where}.msg") or name
        when = ts if type(ts) is int else _digest(event)  # a soft bounce may come again
        found.append(
            Feedback(
                source="mandrill",
                kind=kind,
                event_id=f"{name}:{message_id or _digest(event)}:{when}",
                address=_address(msg, "email", f"{where}.msg"),
                at=at,
                idempotency_key=_text(metadata or {}, "idempotency_key", f"{where}.msg.metadata"),
                provider_message_id=message_id,
                detail=detail,
            )
        )
    return found


def mandrill_url(settings: Settings) -> str:
    """The webhook URL Mandrill signs with: JOURNEYS_MANDRILL_WEBHOOK_URL, else the public URL's."""
    return settings.mandrill_webhook_url or settings.public_url.rstrip("/") + MANDRILL_PATH


# Fields ------------------------------------------------------------------------------------------


def _text(doc: dict[str, Any], name: str, where: object) -> str | None:
    """A string field (numbers as text: some vendors send IDs as numbers), or None."""
    value = doc.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _bad(_path(where, name), "expected a string")
    return str(value)[:255] or None


def _address(doc: dict[str, Any], name: str, where: object) -> str | None:
    value = _text(doc, name, where)
    if value is not None and ("@" not in value or len(value) > 320):
        raise _bad(_path(where, name), "expected an email address")
    return value


def _path(where: object, name: str) -> str:
    return f"{where}.{name}" if where != "" else name


EARLIEST, LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)
"""Times outside these are no time a vendor means: taken as now."""


def _unix_time(value: Any) -> datetime:
    """The vendor's Unix time, or now when it is missing or no time at all."""
    if isinstance(value, str):
        value = unix_seconds(value)
    if type(value) in (int, float):
        return _plausible(datetime.fromtimestamp(min(max(value, 0), 2**33), UTC))
    return datetime.now(UTC)


def _iso_time(value: Any) -> datetime:
    """The vendor's ISO 8601 time, or now when it is missing or not one."""
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            return datetime.now(UTC)
        return _plausible(when if when.tzinfo else when.replace(tzinfo=UTC))
    return datetime.now(UTC)


def _plausible(when: datetime) -> datetime:
    return when.astimezone(UTC) if EARLIEST <= when <= LATEST else datetime.now(UTC)


def _digest(doc: Any) -> str:
    """An event's identity when the vendor gives none: a digest of all of it."""
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:40]


# Routes ------------------------------------------------------------------------------------------


def _json(body: bytes) -> Any:
    try:
        payload = parse_json(body)
    except ValueError:
        raise Refused(400, "malformed JSON body") from None
    if nul_at(payload) is not None:
        raise _bad("", "a NUL character in a string")
    return payload


Reader = Callable[[Settings, Mapping[str, str], bytes], list[Feedback]]
"""A vendor's webhook: its settings checked, the request verified, the body read."""


async def _take(request: Request, read: Reader) -> Response:
    settings: Settings = request.app.state.settings
    try:
        body = await read_body(request.stream())  # 413 and 408 from the app's handlers
        events = read(settings, request.headers, body)
        store = request.app.state.store
        applied = await asyncio.to_thread(apply_feedback, store, signing_key(settings), events)
    except Refused as refused:
        return refused.answer()
    except (OperationalError, DBAPIError, RuntimeError):  # RuntimeError: lost every race
        return JSONResponse(
            {"detail": "temporarily unavailable (database); nothing was taken, retry"},
            status_code=503,
            headers={"Retry-After": "5"},
        )
    return JSONResponse(
        {"status": "accepted", "applied": sum(applied), "duplicates": len(applied) - sum(applied)}
    )


def _not_configured(variable: str) -> Refused:
    return Refused(404, f"this webhook is not configured (set {variable})")


def _read_sendgrid(settings: Settings, headers: Mapping[str, str], body: bytes) -> list[Feedback]:
    key = settings.sendgrid_webhook_public_key
    if key is None:
        raise _not_configured("JOURNEYS_SENDGRID_WEBHOOK_PUBLIC_KEY")
    verify_sendgrid(headers, body, key.get_secret_value())
    return sendgrid_events(_json(body))


def _read_postmark(settings: Settings, headers: Mapping[str, str], body: bytes) -> list[Feedback]:
    password = settings.postmark_webhook_password
    if password is None:
        raise _not_configured("JOURNEYS_POSTMARK_WEBHOOK_PASSWORD")
    verify_postmark(headers, settings.postmark_webhook_user, password.get_secret_value())
    return postmark_events(_json(body))


def _read_mandrill(settings: Settings, headers: Mapping[str, str], body: bytes) -> list[Feedback]:
    key = settings.mandrill_webhook_key
    if key is None:
        raise _not_configured("JOURNEYS_MANDRILL_WEBHOOK_KEY")
    if not (headers.get(MANDRILL_SIGNATURE) or "").strip():
        raise Refused(401, f"signature rejected: missing {MANDRILL_SIGNATURE}")
    params = mandrill_params(body)
    verify_mandrill(headers, params, key.get_secret_value(), mandrill_url(settings))
    return mandrill_events(params)


@router.post("/sendgrid")
async def sendgrid(request: Request) -> Response:
    """SendGrid's signed Event Webhook."""
    return await _take(request, _read_sendgrid)


@router.post("/postmark")
async def postmark(request: Request) -> Response:
    """Postmark's Bounce, Spam Complaint and Subscription Change webhooks (basic auth)."""
    return await _take(request, _read_postmark)


@router.post("/mandrill")
async def mandrill(request: Request) -> Response:
    """Mandrill's message event webhooks (X-Mandrill-Signature)."""
    return await _take(request, _read_mandrill)


@router.head("/mandrill")
async def mandrill_check(request: Request) -> Response:
    """Mandrill asks with HEAD whether the URL exists when the webhook is added."""
    known = request.app.state.settings.mandrill_webhook_key is not None
    return Response(status_code=200 if known else 404)
