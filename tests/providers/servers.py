"""Real servers on loopback for the provider tests, and stand-ins for each vendor's API.

    with LoopbackServer(Stub("/email", postmark_check)) as server:   # uvicorn, own thread
        server.stub.script.then(429, {...}, {"Retry-After": "7"})      # scripted answers
        ...                                                             # call a real client
        server.stub.script.seen[0].json()                               # what arrived

A Stub first checks a request against the vendor's documented contract (path, method, auth
header, required fields) and answers as the vendor would when it is broken, so a client bug
shows up as the vendor's own error. A request that passes gets the next scripted answer (the
last one repeats). `SmtpServer` is the same for SMTP: aiosmtpd, replies scriptable.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal, NamedTuple
from urllib.parse import parse_qsl

import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from activities.providers import OutgoingMessage

KEY = "sk-test-7f3a9c1e5b"
"""The one API key the vendor stand-ins accept."""
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def free_port() -> int:
    """A loopback port nothing listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Scripted HTTP answers ------------------------------------------------------------------


@dataclass
class Received:
    """One request as it arrived."""

    method: str
    path: str
    headers: dict[str, str]
    """Lower-cased names."""
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int
    body: Any = None
    """JSON-able, or str/bytes sent as is."""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before answering (a slow or hung vendor)."""


@dataclass
class Script:
    """Answers to give, in order (the last one repeats), and the requests received."""

    replies: list[Reply] = field(default_factory=list)
    seen: list[Received] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)
    """Set to cut every delay short (at teardown), so no handler outlives its test."""

    def then(
        self,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> Script:
        self.replies.append(Reply(status, body, headers or {}, delay))
        return self

    def next_reply(self) -> Reply:
        if not self.replies:
            return Reply(200, {})
        return self.replies[min(len(self.seen), len(self.replies)) - 1]


Check = Callable[[Request, bytes], Response | None]
"""A vendor's contract: its error response for a request that breaks it, else None."""


class Stub:
    """One vendor endpoint: POST `path`, checked by `check`, answered from `script`."""

    def __init__(self, path: str, check: Check, script: Script | None = None) -> None:
        self.path = path
        self.check = check
        self.script = script or Script()
        self.app = Starlette(
            routes=[Route("/{rest:path}", self._endpoint, methods=["GET", "POST", "PUT"])]
        )

    async def _endpoint(self, request: Request) -> Response:
        script = self.script  # the test's, even if the next test replaces it meanwhile
        body = await request.body()
        script.seen.append(Received(request.method, request.url.path, dict(request.headers), body))
        if request.url.path.rstrip("/") != self.path.rstrip("/"):
            return JSONResponse({"errors": [{"message": "Not Found"}]}, status_code=404)
        if request.method != "POST":
            return JSONResponse({"errors": [{"message": "Method Not Allowed"}]}, 405)
        refusal = self.check(request, body)
        if refusal is not None:
            return refusal
        reply = script.next_reply()
        deadline = time.monotonic() + reply.delay
        while time.monotonic() < deadline and not script.released.is_set():
            await asyncio.sleep(0.01)
        if reply.body is None or isinstance(reply.body, str | bytes):
            return Response(reply.body or b"", reply.status, reply.headers)
        return JSONResponse(reply.body, reply.status, reply.headers)


def contract_app(script: Script, path: str, check: Check) -> Starlette:
    """An ASGI app for `serving()` and the like: one Stub bound to `script`."""
    return Stub(path, check, script).app


class LoopbackServer:
    """A Stub's app in uvicorn on a free 127.0.0.1 port, in a background thread."""

    def __init__(self, stub: Stub) -> None:
        self.stub = stub
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(stub.app, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.005)
        return self

    def stop_soon(self) -> None:
        """Ask the server to stop without waiting (to stop several in parallel)."""
        self.stub.script.released.set()
        self._server.should_exit = True

    def __exit__(self, *exc: object) -> None:
        self.stop_soon()
        self._thread.join(10)
        self._socket.close()


# The vendors' contracts -------------------------------------------------------------------


def _body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _get(doc: Any, *path: str) -> Any:
    for key in path:
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc


SENDGRID_RESERVED_HEADERS = frozenset(
    {"x-sg-id", "x-sg-eid", "received", "dkim-signature", "content-type",
     "content-transfer-encoding", "to", "from", "subject", "reply-to", "cc", "bcc"}
)  # fmt: skip
"""Headers SendGrid's `headers` object may not set (its Mail Send reference)."""


def sendgrid_check(request: Request, raw: bytes) -> Response | None:
    """SendGrid v3 /v3/mail/send: Bearer key; personalizations[].to[].email, from.email,
    subject, content[] (text/plain first); string custom_args and headers, none of them
    reserved. Errors: `{"errors": [{"message", "field", "help"}]}`."""

    def errors(status: int, *items: tuple[str | None, str]) -> JSONResponse:
        listed = [{"message": m, "field": f, "help": None} for f, m in items]
        return JSONResponse({"errors": listed}, status)

    if request.headers.get("authorization") != f"Bearer {KEY}":
        return errors(
            401, (None, "The provided authorization grant is invalid, expired, or revoked")
        )
    doc = _body(raw)
    if not isinstance(doc, dict):
        return errors(400, (None, "Bad Request"))
    problems: list[tuple[str | None, str]] = []
    personalizations = doc.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        problems.append(("personalizations", "The personalizations field is required."))
    else:
        for i, p in enumerate(personalizations):
            for j, to in enumerate(_get(p, "to") or [None]):
                if not EMAIL.match(str(_get(to, "email") or "")):
                    where = f"personalizations.{i}.to.{j}.email"
                    problems.append((where, "Does not contain a valid address."))
            args = _get(p, "custom_args") or {}
            if not all(isinstance(v, str) for v in args.values()):
                problems.append((f"personalizations.{i}.custom_args", "Values must be strings."))
    if not EMAIL.match(str(_get(doc, "from", "email") or "")):
        problems.append(("from.email", "The from object must be provided for every email send."))
    if not doc.get("subject"):
        problems.append(("subject", "The subject is required."))
    content = doc.get("content")
    types = [_get(c, "type") for c in content] if isinstance(content, list) else []
    if not types or not all(isinstance(_get(c, "value"), str) and c["value"] for c in content):
        problems.append(("content", "Unless a valid template_id is provided, content is required."))
    elif "text/plain" in types and types[0] != "text/plain":
        problems.append(("content", "text/plain must be first when text/html is present."))
    headers = doc.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        problems.append(("headers", "Invalid type. Expected: object of strings."))
    else:
        reserved = sorted(k for k in headers if k.lower() in SENDGRID_RESERVED_HEADERS)
        if reserved:
            problems.append(("headers", f"Reserved headers cannot be set: {', '.join(reserved)}"))
    return errors(400, *problems) if problems else None


def postmark_check(request: Request, raw: bytes) -> Response | None:
    """Postmark /email: X-Postmark-Server-Token, JSON; From, To, TextBody or HtmlBody,
    Headers as [{Name, Value}]. Errors: `{"ErrorCode", "Message"}` (10 = bad token, 300 =
    invalid request, 402 = invalid JSON)."""

    def error(status: int, code: int, message: str) -> JSONResponse:
        return JSONResponse({"ErrorCode": code, "Message": message}, status)

    token = request.headers.get("x-postmark-server-token")
    if token != KEY:
        return error(401, 10, "The Server Token you provided was invalid.")
    if "application/json" not in request.headers.get("accept", ""):
        return error(406, 0, "The Accept header must be application/json.")
    doc = _body(raw)
    if not isinstance(doc, dict):
        return error(422, 402, "Received invalid JSON input.")
    if not doc.get("From"):
        return error(422, 300, "Error parsing 'From': Value cannot be null or empty.")
    if not EMAIL.match(str(doc.get("To") or "")):
        return error(422, 300, f"Error parsing 'To': Illegal email address '{doc.get('To')}'.")
    if not (doc.get("TextBody") or doc.get("HtmlBody")):
        return error(422, 300, "Provide either email TextBody or HtmlBody or both.")
    headers = doc.get("Headers", [])
    if not isinstance(headers, list) or not all(
        isinstance(h, dict) and set(h) == {"Name", "Value"} for h in headers
    ):
        return error(422, 300, "Headers must be a list of {Name, Value}.")
    return None


def mailchimp_check(request: Request, raw: bytes) -> Response | None:
    """Mandrill /api/1.0/messages/send: `key` in the JSON body, message.to[].email. Errors are
    HTTP 500 `{"status": "error", "code", "name", "message"}`; a malformed address is not an
    error but a per-recipient result with status "invalid"."""

    def error(code: int, name: str, message: str) -> JSONResponse:
        return JSONResponse(
            {"status": "error", "code": code, "name": name, "message": message}, 500
        )

    doc = _body(raw)
    if not isinstance(doc, dict):
        return error(-1, "ValidationError", "You must specify a key value")
    if doc.get("key") != KEY:
        return error(-1, "Invalid_Key", "Invalid API key")
    to = _get(doc, "message", "to")
    if not isinstance(to, list) or not to or not all(_get(r, "email") for r in to):
        return error(-2, "ValidationError", 'Validation error: {"message":{"to":"required"}}')
    invalid = [r["email"] for r in to if not EMAIL.match(str(r["email"]))]
    if invalid:
        return JSONResponse(
            [
                {"email": e, "status": "invalid", "_id": "mc-x", "reject_reason": None}
                for e in invalid
            ]
        )
    return None


KLAVIYO_EMAIL = "/data/attributes/profile/data/attributes/email"


def klaviyo_check(request: Request, raw: bytes) -> Response | None:
    """Klaviyo POST /api/events: `Authorization: Klaviyo-API-Key`, a `revision` header, a
    JSON:API body: data.type "event"; metric.data.type "metric" with a name; profile.data.type
    "profile" with an identifier. Errors: `{"errors": [{"status", "code", "title", "detail",
    "source": {"pointer"}}]}`."""

    def error(status: int, code: str, detail: str, pointer: str = "/data/") -> JSONResponse:
        item = {"id": "e1", "status": status, "code": code, "title": code.replace("_", " "),
                "detail": detail, "source": {"pointer": pointer}}  # fmt: skip
        return JSONResponse({"errors": [item]}, status)

    if request.headers.get("authorization") != f"Klaviyo-API-Key {KEY}":
        return error(401, "not_authenticated", "Missing or invalid private key.")
    if not re.match(r"^\d{4}-\d{2}-\d{2}", request.headers.get("revision", "")):
        return error(400, "invalid", "A valid revision header is required.")
    if "json" not in request.headers.get("content-type", ""):
        return error(415, "unsupported_media_type", "Use application/vnd.api+json.")
    doc = _body(raw)
    attributes = _get(doc, "data", "attributes")
    if _get(doc, "data", "type") != "event" or not isinstance(attributes, dict):
        return error(400, "invalid", "data.type must be 'event'.")
    if _get(attributes, "metric", "data", "type") != "metric" or not _get(
        attributes, "metric", "data", "attributes", "name"
    ):
        return error(400, "invalid", "A metric name is required.", "/data/attributes/metric/")
    profile = _get(attributes, "profile", "data")
    if _get(profile, "type") != "profile":
        return error(400, "invalid", "A profile is required.", "/data/attributes/profile/")
    email = _get(profile, "attributes", "email")
    if email is not None and not EMAIL.match(str(email)):
        return error(400, "invalid", "Invalid email address", KLAVIYO_EMAIL)
    if not isinstance(attributes.get("properties"), dict):
        return error(400, "invalid", "properties must be an object.")
    return None


def standard_webhook_check(secret: str | None) -> Check:
    """A Standard Webhooks receiver: webhook-id, webhook-timestamp within 5 minutes, and (with
    a secret) a `v1,` signature that matches, else 401."""

    def check(request: Request, raw: bytes) -> Response | None:
        message_id = request.headers.get("webhook-id", "")
        timestamp = request.headers.get("webhook-timestamp", "")
        if not message_id or not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 300:
            return Response("bad webhook-id or webhook-timestamp", 400)
        if secret is None:
            return None
        key = (
            base64.b64decode(secret.removeprefix("whsec_"))
            if secret.startswith("whsec_")
            else secret.encode()
        )
        signed = f"{message_id}.{timestamp}.".encode() + raw
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        given = request.headers.get("webhook-signature", "").split()
        if not any(hmac.compare_digest(g, f"v1,{expected}") for g in given):
            return Response("signature mismatch", 401)
        return None

    return check


class Contract(NamedTuple):
    """A vendor: its path and check, a success answer, a recipient-refused answer."""

    path: str
    check: Check
    ok: tuple[int, Any, dict[str, str]]
    rejected: tuple[int, Any, dict[str, str]]


CONTRACTS: dict[str, Contract] = {
    "sendgrid": Contract(
        "/v3/mail/send",
        sendgrid_check,
        (202, "", {"X-Message-Id": "sg-1"}),
        (
            400,
            {
                "errors": [
                    {
                        "message": "Does not contain a valid address.",
                        "field": "personalizations.0.to.0.email",
                        "help": None,
                    }
                ]
            },
            {},
        ),
    ),
    "postmark": Contract(
        "/email",
        postmark_check,
        (
            200,
            {
                "To": "ada@example.test",
                "SubmittedAt": "2026-11-25T08:00:00Z",
                "MessageID": "pm-1",
                "ErrorCode": 0,
                "Message": "OK",
            },
            {},
        ),
        (
            422,
            {
                "ErrorCode": 406,
                "Message": "You tried to send to recipient(s) that have been "
                "marked as inactive. Found inactive addresses: ada@example.test.",
            },
            {},
        ),
    ),
    "mailchimp": Contract(
        "/api/1.0/messages/send",
        mailchimp_check,
        (
            200,
            [
                {
                    "email": "ada@example.test",
                    "status": "sent",
                    "_id": "mc-1",
                    "reject_reason": None,
                    "queued_reason": None,
                }
            ],
            {},
        ),
        (
            200,
            [
                {
                    "email": "ada@example.test",
                    "status": "rejected",
                    "_id": "mc-2",
                    "reject_reason": "hard-bounce",
                }
            ],
            {},
        ),
    ),
    "klaviyo": Contract(
        "/api/events",
        klaviyo_check,
        (202, "", {}),
        (
            400,
            {
                "errors": [
                    {
                        "id": "e1",
                        "status": 400,
                        "code": "invalid",
                        "title": "Invalid input.",
                        "detail": "Invalid email address",
                        "source": {"pointer": KLAVIYO_EMAIL},
                    }
                ]
            },
            {},
        ),
    ),
}


# ActiveCampaign ---------------------------------------------------------------------------
# Two endpoints on two hosts (the account's API and the Event Tracking API), so it is not in
# CONTRACTS, whose vendors take one request per message: tests/providers/test_activecampaign.py
# serves each check on its own LoopbackServer.

AC_ACCOUNT_ID = "1000123"
"""The Event Tracking `actid` the ActiveCampaign stand-in accepts."""
AC_EVENT_KEY = "evk-4c1d1cc1fa4fbf2b"
"""The Event Tracking `key` it accepts (the API stand-in takes KEY as its Api-Token)."""
AC_CONTACT_FIELDS = frozenset({"email", "firstName", "lastName", "phone", "fieldValues"})
"""What `contact` may hold in a contact sync (its reference, less the deprecated fields)."""
AC_EVENT_FIELDS = ("actid", "key", "event", "eventdata", "visit")
AC_SYNCED = (
    200,
    {"fieldValues": [], "contact": {"email": "ada@example.test", "id": "113"}},
    {},
)
"""A contact sync's answer: 201 for a new contact, 200 for an updated one, same body."""
AC_TRACKED = (200, {"success": 1, "message": "Event spawned"}, {})


def activecampaign_error(
    status: int, title: str, code: str, pointer: str = "/data/attributes/email"
) -> JSONResponse:
    """ActiveCampaign v3's validation error shape."""
    item = {"title": title, "detail": "", "code": code, "source": {"pointer": pointer}}
    return JSONResponse({"errors": [item]}, status)


def activecampaign_contact_check(request: Request, raw: bytes) -> Response | None:
    """POST /api/3/contact/sync: `Api-Token` header, a JSON `{"contact": {...}}` whose email is
    required and valid, names strings, fieldValues `[{"field": "<id>", "value": "<text>"}]`.
    Errors: 403 `{"message"}` (the token), 400 `{}` (not JSON), 422 `{"errors": [{"title",
    "detail", "code", "source": {"pointer"}}]}`."""
    if request.headers.get("api-token") != KEY:
        return JSONResponse({"message": "Forbidden"}, 403)
    doc = _body(raw)
    if "json" not in request.headers.get("content-type", "") or not isinstance(doc, dict):
        return JSONResponse({}, 400)
    contact = doc.get("contact")
    if set(doc) != {"contact"} or not isinstance(contact, dict):
        return activecampaign_error(422, "The contact was not provided.", "field_missing", "/")
    unknown = sorted(set(contact) - AC_CONTACT_FIELDS)
    if unknown:
        where = f"/data/attributes/{unknown[0]}"
        return activecampaign_error(422, f"Unknown attribute {unknown[0]}.", "field_invalid", where)
    email = contact.get("email")
    if not isinstance(email, str) or not email:
        return activecampaign_error(422, "The contact email was not provided.", "field_missing")
    if not EMAIL.match(email):
        return activecampaign_error(422, "Contact Email Address is not valid.", "email_invalid")
    for name in ("firstName", "lastName"):
        if name in contact and not (isinstance(contact[name], str) and contact[name]):
            where = f"/data/attributes/{name}"
            return activecampaign_error(422, f"{name} must be text.", "field_invalid", where)
    values = contact.get("fieldValues", [])
    if not isinstance(values, list) or not all(
        isinstance(v, dict)
        and set(v) == {"field", "value"}
        and str(v["field"]).isdigit()
        and isinstance(v["value"], str)
        for v in values
    ):
        where = "/data/attributes/fieldValues"
        return activecampaign_error(422, "Invalid field values.", "field_invalid", where)
    return None


def activecampaign_event_check(request: Request, raw: bytes) -> Response | None:
    """POST trackcmp.net/event, form-encoded, each field once: actid, key, event (at most 32
    characters), optional eventdata, visit = JSON `{"email": ...}`. Malformed: 400 `{}`; a
    wrong actid or key: 200 `{"success": 0, "message"}`; the Api-Token never belongs here."""
    if request.headers.get("content-type") != "application/x-www-form-urlencoded":
        return JSONResponse({}, 400)
    if "api-token" in request.headers:  # the account's API token sent to another host
        return JSONResponse({}, 400)
    try:
        pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return JSONResponse({}, 400)
    form = dict(pairs)
    if len(form) != len(pairs) or not set(form) <= set(AC_EVENT_FIELDS):
        return JSONResponse({}, 400)
    if not all(form.get(k) for k in ("actid", "key", "event", "visit")):
        return JSONResponse({}, 400)
    if len(form["event"]) > 32:
        return JSONResponse({}, 400)
    visit = _body(form["visit"].encode())
    if not isinstance(visit, dict) or not EMAIL.match(str(visit.get("email") or "")):
        return JSONResponse({}, 400)
    if form["actid"] != AC_ACCOUNT_ID or form["key"] != AC_EVENT_KEY:
        return JSONResponse({"success": 0, "message": "Invalid actid or key"})
    return None


# SMTP -------------------------------------------------------------------------------------


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps what it receives. `rcpt_reply` / `data_reply` refuse
    (e.g. "550 5.1.1 no such user"); `hold` seconds before answering DATA (a slow server)."""

    received: list[EmailMessage] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    """Each message's bytes exactly as they came over DATA (what a mailbox provider reads)."""
    envelopes: list[tuple[str, list[str], str | None]] = field(default_factory=list)
    """(MAIL FROM, RCPT TOs, the login the session authenticated as)."""
    rcpt_reply: str | None = None
    data_reply: str | None = None
    hold: float = 0.0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply:
            return self.data_reply
        mail = message_from_bytes(envelope.content, policy=policy.default)
        self.received.append(mail)  # type: ignore[arg-type]
        self.raw.append(bytes(envelope.original_content or envelope.content))
        auth = session.auth_data if session.authenticated else None
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), login))
        if self.hold:
            await asyncio.sleep(self.hold)
        return "250 Message accepted for delivery"


def password_check(login: str, password: str) -> Callable[..., AuthResult]:
    """An aiosmtpd authenticator that accepts one login and password."""

    def authenticate(
        server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login == login.encode() and auth_data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    return authenticate


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made by the openssl command line tool."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
         "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


class SmtpServer:
    """`with SmtpServer() as smtp:` aiosmtpd on a free loopback port; `smtp.inbox`.

    `auth=(login, password)`: offers AUTH (over plain text unless TLS is on; tests only).
    `tls="starttls"` or `"ssl"` with `cert=(cert.pem, key.pem)`: STARTTLS, or implicit TLS."""

    def __init__(
        self,
        inbox: Inbox | None = None,
        auth: tuple[str, str] | None = None,
        tls: Literal["starttls", "ssl"] | None = None,
        cert: tuple[Path, Path] | None = None,
    ) -> None:
        self.inbox = inbox or Inbox()
        self.port = free_port()
        extra: dict[str, Any] = {}
        if auth:
            # aiosmtpd counts only STARTTLS as TLS for AUTH; implicit TLS is encrypted anyway.
            require_tls = tls == "starttls"
            extra = {"authenticator": password_check(*auth), "auth_require_tls": require_tls}
        if tls:
            assert cert is not None, "TLS needs cert=(cert.pem, key.pem)"
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*cert)
            extra["tls_context" if tls == "starttls" else "ssl_context"] = context
            if tls == "starttls":
                extra["require_starttls"] = True
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port, **extra)

    def __enter__(self) -> SmtpServer:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


# A message ------------------------------------------------------------------------------

UNSUBSCRIBE = {
    "List-Unsubscribe": "<https://journeys.example.test/u/tok123>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
}


def message(**changes: Any) -> OutgoingMessage:
    """A marketing message as the send activity builds it; `changes` override fields."""
    fields: dict[str, Any] = {
        "to": "ada@example.test",
        "from_email": "shop@example.test",
        "from_name": "Example Shop",
        "subject": "You left a lamp in your cart",
        "html": "<p>Hi Ada, your <b>lamp</b> is waiting.</p>",
        "text": "Hi Ada, your lamp is waiting.",
        "headers": UNSUBSCRIBE,
        "idempotency_key": "cart_recovery:u-1:run-7:reminder",
        "journey": "cart_recovery",
        "step": "reminder",
        "user_id": "u-1",
        "properties": {"first_name": "Ada", "items": [{"sku": "lamp-1", "price": 49.5}]},
    }
    return OutgoingMessage(**{**fields, **changes})
