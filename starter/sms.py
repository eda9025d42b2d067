"""Twilio's webhooks: replies to our number (STOP, START) and the status of what we sent.

    POST /v1/sms/twilio/inbound   "A message comes in" on the number or Messaging Service
    POST /v1/sms/twilio/status    the StatusCallback each send names (providers/twilio.py)

Both are authenticated by `X-Twilio-Signature`, the base64 HMAC-SHA1, keyed with the auth
token (JOURNEYS_TWILIO_AUTH_TOKEN), of the full URL Twilio called followed by each POST
parameter's name and value, sorted by name. We cannot know the URL Twilio used from inside a
proxy, so the URL checked is JOURNEYS_PUBLIC_URL + the path (+ "?" and the query string, if
any): the console must be given exactly that URL. A missing or wrong signature is 403 and
changes nothing; both routes are 404 unless JOURNEYS_SMS_PROVIDER=twilio and the token is set.

Inbound: the whole body, trimmed and in any case, is read as Twilio's standard opt-out
handling reads it. An opt-out keyword (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE,
OPTOUT) stops every SMS to the sender's number (`sms_opt_outs`, a keyed hash of the number);
an opt-in one (START, YES, UNSTOP, OPTIN) lifts that; anything else, HELP and INFO included,
changes nothing. The answer is empty TwiML: Twilio itself replies to the keywords.

Status: `delivered`, `undelivered` and `failed` are recorded once per message and status in
`message_events` (source "twilio"), matched to the outbox row by Twilio's message SID. Error
30003 (unreachable), 30005 (unknown number), 30006 (landline) or 21610 (the recipient opted
out at Twilio) also stops SMS to the number (keyword "invalid"). Other statuses are answered
200 and ignored.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from activities.phones import e164, phone_hash
from activities.store import MessageEvent, OutboxMessage, SmsOptOut, Store, utcnow
from starter.calls import read_body
from starter.settings import Settings, signing_key

router = APIRouter(prefix="/v1/sms/twilio", include_in_schema=False)

SIGNATURE = "X-Twilio-Signature"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
OPT_OUT = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN = frozenset({"START", "YES", "UNSTOP", "OPTIN"})
RECORDED = frozenset({"delivered", "undelivered", "failed"})
"""Message statuses kept as message_events; queued, sent, read... are only steps on the way."""
UNREACHABLE = frozenset({"30003", "30005", "30006", "21610"})
"""Error codes about the number itself: no SMS should go to it again."""

_OUTBOX = OutboxMessage.__table__  # type: ignore[attr-defined]
_EVENTS = MessageEvent.__table__  # type: ignore[attr-defined]
_OPT_OUTS = SmsOptOut.__table__  # type: ignore[attr-defined]


class Refused(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers

    def answer(self) -> JSONResponse:
        return JSONResponse({"detail": self.detail}, self.status, self.headers)


def twilio_signature(token: str, url: str, params: Sequence[tuple[str, str]]) -> str:
    """The X-Twilio-Signature Twilio sends for `params` POSTed to `url` (repeated names are
    ordered by value, as Twilio's own validators order them)."""
    signed = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def webhook_url(settings: Settings, request: Request) -> str:
    """The URL Twilio was given: JOURNEYS_PUBLIC_URL + the path (+ the query string)."""
    url = settings.public_url.rstrip("/") + request.url.path
    query = request.url.query
    return f"{url}?{query}" if query else url


def _token(settings: Settings) -> str:
    token = settings.twilio_auth_token
    if settings.sms_provider != "twilio" or token is None or not token.get_secret_value():
        raise Refused(
            404, "this webhook is not configured (set JOURNEYS_SMS_PROVIDER=twilio and "
            "JOURNEYS_TWILIO_AUTH_TOKEN)"
        )  # fmt: skip
    return token.get_secret_value()


async def _verified(request: Request) -> dict[str, str]:
    """The signed form parameters, or Refused (404, 403, 413, 408, 400)."""
    settings: Settings = request.app.state.settings
    token = _token(settings)
    given = (request.headers.get(SIGNATURE) or "").strip()
    if not given:
        raise Refused(403, f"signature rejected: missing {SIGNATURE}")
    body = await read_body(request.stream())  # 413 and 408 from the app's handlers
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if kind != "application/x-www-form-urlencoded":
            raise ValueError(kind)
        pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        raise Refused(
            400, "body not understood: expected form fields (application/x-www-form-urlencoded)"
        ) from None
    expected = twilio_signature(token, webhook_url(settings, request), pairs)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Refused(
            403,
            f"signature rejected: {SIGNATURE} does not match JOURNEYS_PUBLIC_URL + this path "
            "and the parameters",
        )
    return dict(pairs)


async def _answer(request: Request, handle: Any) -> Response:
    try:
        params = await _verified(request)
        return await handle(request, params)  # type: ignore[no-any-return]
    except Refused as refused:
        return refused.answer()
    except (OperationalError, DBAPIError, RuntimeError):  # Twilio retries a 5xx
        return JSONResponse(
            {"detail": "temporarily unavailable (database); nothing was taken, retry"},
            status_code=503,
            headers={"Retry-After": "5"},
        )


def _number_hash(settings: Settings, value: str | None) -> str | None:
    number = e164(value, settings.sms_default_region) if value else None
    return phone_hash(signing_key(settings), number) if number else None


# Inbound -----------------------------------------------------------------------------------------


async def _inbound(request: Request, params: dict[str, str]) -> Response:
    settings: Settings = request.app.state.settings
    store: Store = request.app.state.store
    keyword = (params.get("Body") or "").strip().upper()
    if keyword in OPT_OUT or keyword in OPT_IN:
        key = _number_hash(settings, params.get("From"))
        if key is not None:
            await asyncio.to_thread(
                store.set_sms_opt_out, key, keyword if keyword in OPT_OUT else None
            )
    return Response(EMPTY_TWIML, media_type="text/xml")


@router.post("/inbound")
async def inbound(request: Request) -> Response:
    """Twilio's incoming-message webhook: opt-out and opt-in keywords."""
    return await _answer(request, _inbound)


# Status callbacks --------------------------------------------------------------------------------


def record_status(
    store: Store, sid: str, status: str, error_code: str | None, number_hash: str | None
) -> bool:
    """Record one final status of one message, once; True if this call recorded it. With an
    error about the number itself, stop SMS to it in the same transaction."""
    dedupe = f"twilio:{sid}:{status}"[:255]
    for _ in range(3):  # a concurrent delivery of the same callback loses the insert once
        try:
            with store.engine.begin() as conn:
                if conn.dialect.name == "sqlite":
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                seen = conn.execute(select(_EVENTS.c.id).where(_EVENTS.c.dedupe_key == dedupe))
                if seen.first() is not None:
                    return False
                message = conn.execute(
                    select(
                        _OUTBOX.c.idempotency_key, _OUTBOX.c.run_id, _OUTBOX.c.journey,
                        _OUTBOX.c.template, _OUTBOX.c.variant, _OUTBOX.c.user_id,
                    ).where(_OUTBOX.c.provider_message_id == sid, _OUTBOX.c.provider == "twilio")
                ).first()  # fmt: skip
                row: dict[str, Any] = {
                    "dedupe_key": dedupe,
                    "kind": status,
                    "source": "twilio",
                    "detail": f"ErrorCode {error_code}"[:64] if error_code else None,
                    "at": utcnow(),
                    "received_at": utcnow(),
                }
                if message is not None:
                    seq = str(message.idempotency_key).rsplit("/", 1)[-1]
                    row |= {
                        "message_key": f"{message.run_id}/{seq}"[:96],
                        "run_id": message.run_id,
                        "journey": message.journey,
                        "step": message.template,
                        "variant": message.variant,
                        "user_id": message.user_id,
                    }
                conn.execute(_EVENTS.insert().values(**row))
                if number_hash is not None and error_code in UNREACHABLE:
                    known = conn.execute(
                        select(_OPT_OUTS.c.phone_hash).where(_OPT_OUTS.c.phone_hash == number_hash)
                    ).first()
                    if known is None:  # an earlier STOP keeps its keyword
                        conn.execute(
                            _OPT_OUTS.insert().values(
                                phone_hash=number_hash, keyword="invalid", since=utcnow()
                            )
                        )
                return True
        except IntegrityError:
            continue
    raise RuntimeError(f"could not record Twilio status {status!r} of {sid!r}")


async def _status(request: Request, params: dict[str, str]) -> Response:
    settings: Settings = request.app.state.settings
    store: Store = request.app.state.store
    sid = (params.get("MessageSid") or "").strip()
    status = (params.get("MessageStatus") or "").strip().lower()
    if not sid:
        raise Refused(422, "MessageSid is missing")
    if status not in RECORDED:
        return JSONResponse({"status": "ignored"})
    error_code = (params.get("ErrorCode") or "").strip()[:16] or None
    key = _number_hash(settings, params.get("To"))
    applied = await asyncio.to_thread(record_status, store, sid[:64], status, error_code, key)
    return JSONResponse(
        {"status": "accepted", "applied": int(applied), "duplicates": int(not applied)}
    )


@router.post("/status")
async def status_callback(request: Request) -> Response:
    """Twilio's StatusCallback for each message we sent."""
    return await _answer(request, _status)
