"""A stand-in for Firebase Cloud Messaging's HTTP v1 API and Google's OAuth2 token endpoint.

    account = ServiceAccount.generate()                    # an RSA key, as a Firebase key file
    with LoopbackServer(FcmApi(account)) as server:        # uvicorn on loopback
        path = account.write(tmp_path, token_uri=f"{server.url}/token")
        server.stub.fail("tok-b", UNREGISTERED)            # answers scripted per device token
        ...                                                # FcmPush(path, None, server.url)
        server.stub.sent                                   # the messages FCM accepted
        server.stub.tokens_issued                          # access tokens handed out

What it holds to:
- POST /token (RFC 7523, as google-auth's service account credentials use it): form field
  `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` and `assertion`, a JWT signed RS256
  with the account's key, `iss` its client_email, `aud` Google's token URI (or this one),
  `scope` including firebase.messaging, `iat`/`exp` current. Answers {"access_token", "expires_in",
  "token_type": "Bearer"}; else 400 {"error": "invalid_grant" | "unsupported_grant_type"}.
- POST /v1/projects/{project}/messages:send with `Authorization: Bearer <issued token>` (else
  401 UNAUTHENTICATED), for the account's project (else 403 PERMISSION_DENIED), a body
  {"message": {...}} with exactly one of token/topic/condition, known fields only, string data
  values and at most 4096 bytes of payload (else 400 INVALID_ARGUMENT with a google.rpc
  BadRequest). Answers {"name": "projects/<p>/messages/<id>"}.
- Failures scripted per device token (`fail`) answer FCM's documented error JSON: a
  google.rpc Status whose details carry a google.firebase.fcm.v1.FcmError errorCode.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.providers.servers import Received, Script, Stub

PROJECT = "journeys-test-7c1e"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
"""The audience google-auth's grant names whatever the key file's token_uri (Google takes it)."""
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
MESSAGE_FIELDS = frozenset(
    {"name", "data", "notification", "android", "webpush", "apns", "fcm_options",
     "token", "topic", "condition"}
)  # fmt: skip
NOTIFICATION_FIELDS = frozenset({"title", "body", "image"})
MAX_PAYLOAD = 4096


@dataclass(frozen=True)
class Failure:
    """One of FCM's documented error answers."""

    status: int
    rpc_status: str
    message: str
    error_code: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    hang: bool = False


UNREGISTERED = Failure(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")
INVALID_TOKEN = Failure(
    400,
    "INVALID_ARGUMENT",
    "The registration token is not a valid FCM registration token",
    "INVALID_ARGUMENT",
)
QUOTA_EXCEEDED = Failure(
    429,
    "RESOURCE_EXHAUSTED",
    "Quota exceeded for quota metric 'Send requests'.",
    "QUOTA_EXCEEDED",
    (("Retry-After", "30"),),
)
UNAVAILABLE = Failure(503, "UNAVAILABLE", "The service is currently unavailable.", "UNAVAILABLE")
INTERNAL = Failure(500, "INTERNAL", "Internal error encountered.", "INTERNAL")
UNAUTHENTICATED = Failure(
    401,
    "UNAUTHENTICATED",
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential.",
    "THIRD_PARTY_AUTH_ERROR",
)
SENDER_ID_MISMATCH = Failure(403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH")
HANG = Failure(200, "OK", "", hang=True)
"""No answer until the server stops (the client's read timeout fires first)."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class ServiceAccount:
    """A Firebase service account: an RSA key and the JSON key file Firebase hands out."""

    key: rsa.RSAPrivateKey
    project_id: str = PROJECT
    client_email: str = f"firebase-adminsdk-x1y2z@{PROJECT}.iam.gserviceaccount.com"
    private_key_id: str = field(default_factory=lambda: secrets.token_hex(20))

    @classmethod
    def generate(cls, project_id: str = PROJECT) -> ServiceAccount:
        return cls(
            rsa.generate_private_key(public_exponent=65537, key_size=2048),
            project_id,
            f"firebase-adminsdk-x1y2z@{project_id}.iam.gserviceaccount.com",
        )

    @property
    def private_key_pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    def info(self, token_uri: str) -> dict[str, str]:
        return {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": self.private_key_id,
            "private_key": self.private_key_pem,
            "client_email": self.client_email,
            "client_id": "104729384756102938475",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "universe_domain": "googleapis.com",
        }

    def write(self, folder: Path, token_uri: str, **changes: Any) -> Path:
        """The key file in `folder`; `changes` override its fields (None removes one)."""
        info: dict[str, Any] = {**self.info(token_uri), **changes}
        path = folder / f"{self.project_id}-firebase-adminsdk.json"
        path.write_text(json.dumps({k: v for k, v in info.items() if v is not None}))
        return path


class FcmApi(Stub):
    """FCM HTTP v1's messages:send and the OAuth2 token endpoint, for one service account."""

    def __init__(self, account: ServiceAccount, expires_in: int = 3599) -> None:
        self.path = f"/v1/projects/{account.project_id}/messages:send"
        self.script = Script()
        self.account = account
        self.expires_in = expires_in
        """Seconds each access token lives (google-auth refreshes 3 min 45 s before)."""
        self.tokens_issued: list[str] = []
        self.revoked: set[str] = set()
        self.sent: list[dict[str, Any]] = []
        """The `message` of every send FCM accepted, in order."""
        self.failures: dict[str, list[Failure]] = {}
        self.unregistered: set[str] = set()
        self._ids = itertools.count(8_112_000_000_000_000_001)
        self.app = Starlette(
            routes=[Route("/{rest:path}", self._serve, methods=["GET", "POST", "PUT"])]
        )

    # The test's controls ------------------------------------------------------------------

    def fail(self, device_token: str, *failures: Failure) -> FcmApi:
        """Answer the next sends to `device_token` with these, one each, in order."""
        self.failures.setdefault(device_token, []).extend(failures)
        return self

    def unregister(self, *device_tokens: str) -> FcmApi:
        """The app was uninstalled: every send to these answers 404 UNREGISTERED from now on."""
        self.unregistered.update(device_tokens)
        return self

    def revoke_tokens(self) -> None:
        """Every access token issued so far is refused from now on (401)."""
        self.revoked.update(self.tokens_issued)

    def delivered_to(self, device_token: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m.get("token") == device_token]

    def sends(self) -> list[Received]:
        """Every messages:send request that arrived, accepted or not."""
        return [r for r in self.script.seen if r.path.endswith("messages:send")]

    def token_requests(self) -> list[Received]:
        return [r for r in self.script.seen if r.path == "/token"]

    # Serving ----------------------------------------------------------------------------

    async def _serve(self, request: Request) -> Response:
        script = self.script
        body = await request.body()
        script.seen.append(Received(request.method, request.url.path, dict(request.headers), body))
        if request.url.path == "/token" and request.method == "POST":
            return self._token(body, str(request.url))
        if request.url.path.startswith("/v1/projects/") and request.url.path.endswith(
            "/messages:send"
        ):
            if request.method != "POST":
                return _status(405, "METHOD_NOT_ALLOWED", "Method Not Allowed")
            return await self._send(request, body, script)
        return _status(404, "NOT_FOUND", "The requested URL was not found on this server.")

    def _token(self, raw: bytes, url: str) -> Response:
        form = dict(parse_qsl(raw.decode(errors="replace")))
        if form.get("grant_type") != JWT_BEARER:
            return _oauth_error("unsupported_grant_type", "Invalid grant_type.")
        problem = self._bad_assertion(form.get("assertion", ""), url)
        if problem is not None:
            return _oauth_error("invalid_grant", problem)
        token = "ya29.c." + secrets.token_urlsafe(48)
        self.tokens_issued.append(token)
        return JSONResponse(
            {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}
        )

    def _bad_assertion(self, assertion: str, token_uri: str) -> str | None:
        """Why the JWT bearer grant is refused, else None."""
        try:
            head, payload, signature = assertion.split(".")
            header = json.loads(_unb64url(head))
            claims = json.loads(_unb64url(payload))
            if header.get("alg") != "RS256":
                return "Invalid JWT: unsupported algorithm."
            self.account.key.public_key().verify(
                _unb64url(signature),
                f"{head}.{payload}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            return "Invalid JWT Signature."
        except (ValueError, TypeError):
            return "Invalid JWT: cannot be parsed."
        now = time.time()
        if claims.get("iss") != self.account.client_email:
            return "Invalid JWT: the issuer is not the service account."
        if claims.get("aud") not in (token_uri, GOOGLE_TOKEN_URI):
            return "Invalid JWT: the audience is not the token endpoint."
        if SCOPE not in str(claims.get("scope", "")).split():
            return "Invalid OAuth scope or ID token audience provided."
        if not claims.get("iat", now + 1e9) <= now + 300 < claims.get("exp", 0) + 300:
            return "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe."
        if header.get("kid") not in (None, self.account.private_key_id):
            return "Invalid JWT Signature."
        return None

    async def _send(self, request: Request, raw: bytes, script: Script) -> Response:
        scheme, _, access = request.headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or access not in self.tokens_issued or access in self.revoked:
            return _failure(UNAUTHENTICATED, fcm_code=False)
        if request.url.path != self.path:
            return _status(
                403,
                "PERMISSION_DENIED",
                "Permission 'cloudmessaging.messages.create' denied on resource "
                f"'{request.url.path.removesuffix('/messages:send')[4:]}' (or it may not exist).",
            )
        message, problem = _checked(raw)
        if problem is not None:
            return problem
        assert message is not None
        device = message.get("token")
        if device in self.unregistered:
            return _failure(UNREGISTERED)
        queued = self.failures.get(device) if isinstance(device, str) else None
        if queued:
            failure = queued.pop(0)
            if failure.hang:
                while not script.released.is_set():
                    await asyncio.sleep(0.01)
                return Response(status_code=503)
            return _failure(failure)
        self.sent.append(message)
        name = f"projects/{self.account.project_id}/messages/{next(self._ids)}"
        return JSONResponse({"name": name})


def _checked(raw: bytes) -> tuple[dict[str, Any] | None, Response | None]:
    """The message, or FCM's 400 for a body that breaks the contract."""
    try:
        doc = json.loads(raw)
    except ValueError:
        return None, _bad_request("Invalid JSON payload received.", "")
    if not isinstance(doc, dict) or not isinstance(doc.get("message"), dict):
        return None, _bad_request("Request contains an invalid argument.", "message")
    unknown = sorted(set(doc) - {"message", "validate_only"})
    if unknown:
        return None, _bad_request(
            f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.',
            unknown[0],
        )
    message: dict[str, Any] = doc["message"]
    unknown = sorted(set(message) - MESSAGE_FIELDS)
    if unknown:
        return None, _bad_request(
            f"Invalid JSON payload received. Unknown name \"{unknown[0]}\" at 'message': "
            "Cannot find field.",
            f"message.{unknown[0]}",
        )
    targets = [k for k in ("token", "topic", "condition") if k in message]
    if len(targets) != 1 or not isinstance(message[targets[0]], str) or not message[targets[0]]:
        return None, _bad_request(
            "Exactly one of message.token, message.topic or message.condition must be set.",
            "message",
        )
    data = message.get("data", {})
    if not isinstance(data, dict):
        return None, _bad_request("Invalid value at 'message.data'.", "message.data")
    for index, (key, value) in enumerate(data.items()):
        if not isinstance(value, str):
            text = f"Invalid value at 'message.data[{index}].value' (TYPE_STRING), {value}"
            return None, _bad_request(text, f"message.data[{index}].value")
        if key in ("from", "gcm") or key.startswith("google"):
            return None, _bad_request(f"Invalid data key: {key}", f"message.data[{index}].key")
    notification = message.get("notification", {})
    if not isinstance(notification, dict) or not all(
        k in NOTIFICATION_FIELDS and isinstance(v, str) for k, v in notification.items()
    ):
        return None, _bad_request(
            "Invalid value at 'message.notification'.", "message.notification"
        )
    size = len(json.dumps(data).encode()) + len(json.dumps(notification).encode())
    if size > MAX_PAYLOAD:
        return None, _failure(
            Failure(400, "INVALID_ARGUMENT", "Message is too big", "INVALID_ARGUMENT")
        )
    return message, None


def _status(
    status: int,
    rpc_status: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A google.rpc Status, as Google APIs answer errors."""
    error: dict[str, Any] = {"code": status, "message": message, "status": rpc_status}
    if details:
        error["details"] = details
    return JSONResponse({"error": error}, status, headers)


def _failure(failure: Failure, fcm_code: bool = True) -> JSONResponse:
    details = (
        [{"@type": FCM_ERROR, "errorCode": failure.error_code}]
        if fcm_code and failure.error_code
        else None
    )
    return _status(
        failure.status, failure.rpc_status, failure.message, details, dict(failure.headers)
    )


def _bad_request(message: str, field_name: str) -> JSONResponse:
    details = [
        {
            "@type": BAD_REQUEST,
            "fieldViolations": [{"field": field_name, "description": message}],
        }
    ]
    return _status(400, "INVALID_ARGUMENT", message, details)


def _oauth_error(error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, 400)
