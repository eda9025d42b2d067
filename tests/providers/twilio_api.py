"""A stand-in for Twilio's Messages API on loopback, keeping its documented contract, and
Twilio's side of the webhooks it sends us (signed the documented way).

    with TwilioServer() as twilio:                       # or the `twilio_api` fixture
        provider = TwilioSMS(ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, None, base_url=twilio.base_url)
        twilio.script(too_many_requests(retry_after=7))  # the next request gets a 429
        provider.send(...)                               # -> RetryableProviderError
        provider.send(...)                               # the queue is empty: 201, a new SM sid
        twilio.received[-1].body                         # the raw form body Twilio got
        twilio.forms()[-1]                               # ... as {name: value}
        twilio.messages                                  # the message resources it created

        await post_webhook(api_url, "/v1/sms/twilio/inbound", inbound_params(...),
                           public_url=PUBLIC)            # Twilio calling our API, signed

What it holds to (Twilio's Messages API reference, its REST error documents and the
security page on webhooks):
- POST /2010-04-01/Accounts/{AccountSid}/Messages.json only (404 `{"code": 20404}` else);
- HTTP Basic auth, AccountSid:AuthToken, else 401 `{"code": 20003, "message": "Authenticate"}`
  (a SID in the path other than the authenticated one is 404 too);
- form encoding (application/x-www-form-urlencoded), each field once;
- `To` required (21604) in E.164 (else 21211 "not a valid phone number"), exactly one of
  `From` / `MessagingServiceSid` (21603 without either; this client sends one, never both),
  `Body` required (21602) and at most 1600 characters (21617);
- answers 201 with the message resource (sid "SM" + 32 hex; status "queued", or "accepted"
  through a Messaging Service); errors as `{"code", "message", "more_info", "status"}`.

Scripted answers (`script(...)`) are taken in order by requests that pass the contract; once
none are left, each request succeeds.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
import time
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.providers.servers import LoopbackServer, Received, Reply, Stub

ACCOUNT_SID = "AC3f1c0d6e9b2a47c58d0e1f2a3b4c5d6e"
AUTH_TOKEN = "9c2e5a7f1b3d4e6a8c0b2d4f6a8e0c1d"
"""The credentials the stand-in accepts (and the key our webhooks are signed with)."""
FROM_NUMBER = "+15017122661"
"""Our Twilio number (the one Twilio's examples use)."""
MESSAGING_SERVICE_SID = "MG9752274e9e519418a7406176694466fa"
API_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
E164 = re.compile(r"^\+[1-9]\d{1,14}$")
MAX_BODY = 1600
SIGNATURE = "X-Twilio-Signature"

ERRORS = {
    20003: (401, "Authenticate"),
    20404: (404, "The requested resource was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "An internal server error has occurred"),
    21211: (400, "The 'To' number is not a valid phone number."),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' or 'MessagingServiceSid' parameter is required to send a message."),
    21604: (400, "A 'To' phone number is required."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21614: (400, "'To' number is not a valid mobile number"),
    21617: (400, "The concatenated message body exceeds the 1600 character limit."),
}
"""Twilio's error codes the stand-in answers with (status, message)."""


def error_document(
    code: int, status: int | None = None, message: str | None = None
) -> dict[str, Any]:
    """Twilio's REST error body."""
    default_status, default_message = ERRORS.get(code, (400, "Error"))
    return {
        "code": code,
        "message": message or default_message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status or default_status,
    }


def error(code: int, headers: dict[str, str] | None = None) -> JSONResponse:
    doc = error_document(code)
    return JSONResponse(doc, doc["status"], headers)


# Scripted answers -------------------------------------------------------------------------


def too_many_requests(retry_after: int | None = None) -> Reply:
    """429, Twilio's 20429 (with Retry-After when given)."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return Reply(429, error_document(20429), headers)


def server_error() -> Reply:
    return Reply(500, error_document(20500))


def refused(code: int) -> Reply:
    """A 4xx with Twilio's error document for `code` (21211, 21610, 21614, 21617, ...)."""
    doc = error_document(code)
    return Reply(doc["status"], doc)


def hang(seconds: float) -> Reply:
    """Take the request and answer only after `seconds` (cut short at teardown)."""
    return Reply(201, None, {}, delay=seconds)


# The server -------------------------------------------------------------------------------


class _TwilioStub(Stub):
    """The Messages endpoint: checks the contract, then answers from the queue."""

    def __init__(self) -> None:
        super().__init__(API_PATH, lambda request, raw: None)
        self.queue: list[Reply] = []
        self.messages: list[dict[str, Any]] = []

    async def _endpoint(self, request: Request) -> Response:
        script = self.script
        raw = await request.body()
        script.seen.append(Received(request.method, request.url.path, dict(request.headers), raw))
        if not _authenticated(request.headers.get("authorization", "")):
            return error(20003)
        if request.url.path != API_PATH or request.method != "POST":
            return error(20404)
        form = _form(request, raw)
        if form is None:
            return JSONResponse(
                error_document(21604, 400, "The request body must be form-encoded fields."), 400
            )
        problem = _check(form)
        if problem is not None:
            return error(problem)
        reply = self.queue.pop(0) if self.queue else None
        if reply is not None:
            deadline = time.monotonic() + reply.delay
            while time.monotonic() < deadline and not script.released.is_set():
                await asyncio.sleep(0.01)
            if reply.status != 201 or reply.body is not None:
                return JSONResponse(reply.body, reply.status, reply.headers)
        resource = _resource(form)
        self.messages.append(resource)
        return JSONResponse(resource, 201)


def _authenticated(header: str) -> bool:
    scheme, _, encoded = header.partition(" ")
    try:
        given = base64.b64decode(encoded, validate=True).decode()
    except ValueError:
        return False
    return scheme.lower() == "basic" and hmac.compare_digest(given, f"{ACCOUNT_SID}:{AUTH_TOKEN}")


def _form(request: Request, raw: bytes) -> dict[str, str] | None:
    if request.headers.get("content-type", "").split(";")[0] != "application/x-www-form-urlencoded":
        return None
    try:
        pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return None
    form = dict(pairs)
    return form if len(form) == len(pairs) else None


def _check(form: dict[str, str]) -> int | None:
    """The error code Twilio answers a form with, or None when it would send it."""
    to = form.get("To")
    if not to:
        return 21604
    if not E164.match(to):
        return 21211
    if ("From" in form) == ("MessagingServiceSid" in form):
        return 21603
    body = form.get("Body")
    if not body:
        return 21602
    if len(body) > MAX_BODY:
        return 21617
    return None


def _resource(form: dict[str, str]) -> dict[str, Any]:
    """The message resource as the Messages API documents its answer to a create."""
    sid = "SM" + secrets.token_hex(16)
    now = formatdate(usegmt=True)
    uri = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}"
    service = form.get("MessagingServiceSid")
    return {
        "account_sid": ACCOUNT_SID,
        "api_version": "2010-04-01",
        "body": form["Body"],
        "date_created": now,
        "date_sent": None,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": form.get("From"),
        "messaging_service_sid": service,
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "accepted" if service else "queued",
        "subresource_uris": {"media": f"{uri}/Media.json"},
        "to": form["To"],
        "uri": f"{uri}.json",
    }


class TwilioServer:
    """Twilio's Messages API on a free 127.0.0.1 port (uvicorn in a thread)."""

    def __init__(self) -> None:
        self._stub = _TwilioStub()
        self._server = LoopbackServer(self._stub)
        self.base_url = self._server.url
        """What TwilioSMS takes as `base_url` (JOURNEYS_TWILIO_BASE_URL)."""

    def __enter__(self) -> TwilioServer:
        self._server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.__exit__(*exc)

    def script(self, *replies: Reply) -> TwilioServer:
        """Answer the next requests that pass the contract with these, in order."""
        self._stub.queue.extend(replies)
        return self

    @property
    def received(self) -> list[Received]:
        """Every request as it arrived, refused or not."""
        return self._stub.script.seen

    def forms(self) -> list[dict[str, str]]:
        """Each received body read as form fields."""
        return [dict(parse_qsl(r.body.decode(), keep_blank_values=True)) for r in self.received]

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The message resources created (answered 201), in order."""
        return self._stub.messages

    def release(self) -> None:
        """End any hung answer now."""
        self._stub.script.released.set()


# Twilio calling us ------------------------------------------------------------------------


def twilio_signature(token: str, url: str, params: list[tuple[str, str]] | dict[str, str]) -> str:
    """X-Twilio-Signature as Twilio's security docs define it: base64 HMAC-SHA1, keyed with the
    auth token, of the full URL Twilio called followed by each POST parameter's name and value,
    sorted by name."""
    pairs = sorted(params.items() if isinstance(params, dict) else params)
    signed = url + "".join(name + value for name, value in pairs)
    digest = hmac.new(token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


async def post_webhook(
    api_url: str,
    path: str,
    params: dict[str, str],
    *,
    public_url: str,
    token: str = AUTH_TOKEN,
    signature: str | None = None,
) -> httpx.Response:
    """POST `params` to our API at `api_url + path` as Twilio does: form-encoded, signed for
    `public_url + path` (the URL configured in the Twilio console). `signature` overrides it."""
    if signature is None:
        signature = twilio_signature(token, public_url.rstrip("/") + path, params)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "User-Agent": "TwilioProxy/1.1",
        SIGNATURE: signature,
    }
    async with httpx.AsyncClient(base_url=api_url, timeout=10) as http:
        return await http.post(path, content=urlencode(params).encode(), headers=headers)


def message_sid() -> str:
    return "SM" + secrets.token_hex(16)


def inbound_params(sender: str, body: str, sid: str | None = None) -> dict[str, str]:
    """Twilio's request to an incoming-message webhook (the parameters its docs list, values
    as in its example, sender and body ours)."""
    sid = sid or message_sid()
    return {
        "ToCountry": "US",
        "ToState": "CA",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ToCity": "SAN FRANCISCO",
        "FromZip": "",
        "SmsSid": sid,
        "FromState": "",
        "SmsStatus": "received",
        "FromCity": "",
        "Body": body,
        "FromCountry": "US",
        "To": FROM_NUMBER,
        "ToZip": "94105",
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": sender,
        "ApiVersion": "2010-04-01",
    }


def status_params(sid: str, status: str, to: str, error_code: str | None = None) -> dict[str, str]:
    """Twilio's status callback for an outbound message (its documented parameters)."""
    params = {
        "AccountSid": ACCOUNT_SID,
        "From": FROM_NUMBER,
        "MessageSid": sid,
        "MessageStatus": status,
        "SmsSid": sid,
        "SmsStatus": status,
        "To": to,
        "ApiVersion": "2010-04-01",
    }
    if error_code is not None:
        params["ErrorCode"] = error_code
    return params
