"""Push notifications through Firebase Cloud Messaging's HTTP v1 API (the `push` channel).

One `POST /v1/projects/{project}/messages:send` per device token, authorised by an OAuth2
access token that google-auth gets for the service account (cached until near expiry, shared
by the worker's threads). FCM has no idempotency key, so a send is final once any device has
the notification: after that, failures on the user's other devices are not raised (a retry
would notify the first device twice).

How FCM's answers are read (its documented errors, google.rpc Status JSON whose `details[]`
carry a `google.firebase.fcm.v1.FcmError` `errorCode`):
- 404 UNREGISTERED, or 400 INVALID_ARGUMENT about the registration token: the token is dead,
  `on_unregistered(token)` forgets it, the other devices still get the notification;
- 429 QUOTA_EXCEEDED, 500 INTERNAL, 503 UNAVAILABLE: retry later (Retry-After when given);
- 401 (THIRD_PARTY_AUTH_ERROR, or an expired access token): a fresh token, once, then refused;
- 403 SENDER_ID_MISMATCH and any other 4xx: refused for that token.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from google.auth import exceptions as auth_exceptions
from google.auth.transport.requests import Request as AuthRequest
from google.oauth2 import service_account

from activities.providers._http import HttpProvider, body_json
from activities.providers.base import (
    AmbiguousProviderError,
    Delivery,
    OutgoingMessage,
    PermanentProviderError,
    ProviderConfigError,
    ProviderError,
    RetryableProviderError,
)

log = logging.getLogger("journeys.push")

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
DEAD_CODES = frozenset({"UNREGISTERED"})


class _DeadToken(PermanentProviderError):
    """FCM says this registration token no longer (or never) reaches a device."""


class _Unauthenticated(PermanentProviderError):
    """401: the access token was refused (expired early, revoked, or APNs/web push auth)."""


class _TimedRequest(AuthRequest):
    """google-auth's requests transport with our timeout: its default (120 s) would let a hung
    token endpoint hold a worker thread for two minutes."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["timeout"] = self._timeout
        return super().__call__(*args, **kwargs)  # type: ignore[no-untyped-call]


class FcmPush(HttpProvider):
    """Sends one notification to each of a user's devices; see the module docstring."""

    name = "fcm"
    idempotent = False
    default_base_url = "https://fcm.googleapis.com"

    def __init__(
        self,
        credentials_file: Path | None,
        project_id: str | None,
        base_url: str = "https://fcm.googleapis.com",
        on_unregistered: Callable[[str], object] | None = None,
        timeout: float = 10.0,
    ) -> None:
        if credentials_file is None or not Path(credentials_file).is_file():
            raise ProviderConfigError(
                "push through FCM needs JOURNEYS_FCM_CREDENTIALS_FILE: the Firebase service "
                "account's JSON key file"
            )
        try:
            info = json.loads(Path(credentials_file).read_text())
            load = service_account.Credentials.from_service_account_file
            self._credentials = load(str(credentials_file), scopes=[SCOPE])  # type: ignore[no-untyped-call]
        except (OSError, ValueError, KeyError, TypeError) as err:  # never echo the file
            raise ProviderConfigError(
                "JOURNEYS_FCM_CREDENTIALS_FILE is not a service account's JSON key file "
                f"({type(err).__name__})"
            ) from None
        project = project_id or info.get("project_id")
        if not isinstance(project, str) or not project:
            raise ProviderConfigError(
                "push through FCM needs JOURNEYS_FCM_PROJECT_ID (the key file names no project)"
            )
        self.project_id = project
        self.on_unregistered = on_unregistered
        self._lock = threading.Lock()
        self._auth_request = _TimedRequest(timeout)
        self._path = f"/v1/projects/{project}/messages:send"
        key = info.get("private_key")
        super().__init__(
            base_url=base_url,
            timeout=timeout,
            secrets=(key,) if isinstance(key, str) else (),
        )

    def close(self) -> None:
        super().close()
        self._auth_request.session.close()

    # OAuth2 --------------------------------------------------------------------------------

    def _access_token(self, refused: str | None = None) -> str:
        """The cached access token, refreshed when (nearly) expired or when it is `refused`,
        by one thread at a time: the others wait for the fresh one instead of fetching theirs."""
        with self._lock:
            creds = self._credentials
            if not creds.valid or (refused is not None and creds.token == refused):
                try:
                    creds.refresh(self._auth_request)
                except auth_exceptions.RefreshError as err:
                    reason = self.redact(f"fcm: OAuth2 token refused: {_first_arg(err)}")
                    if getattr(err, "retryable", False):
                        raise RetryableProviderError(reason) from None
                    raise PermanentProviderError(reason) from None
                except auth_exceptions.TransportError as err:
                    raise RetryableProviderError(
                        f"fcm: cannot reach the OAuth2 token endpoint ({type(err).__name__})"
                    ) from None
            return str(creds.token)

    def redact(self, text: str) -> str:
        text = super().redact(text)
        token = self._credentials.token
        return text.replace(token, "[redacted]") if token else text

    # Sending -------------------------------------------------------------------------------

    def send(self, message: OutgoingMessage) -> Delivery:
        """Each device in turn; a Delivery as soon as one device accepted (see the module)."""
        accepted: str | None = None
        ambiguous: ProviderError | None = None
        retryable: RetryableProviderError | None = None
        refused: list[str] = []
        dead = 0
        if message.devices:
            self._access_token()  # a token refused or unreachable fails the send at once
        for token in dict.fromkeys(message.devices):  # a token listed twice is one device
            try:
                name = self._send_one(token, message)
            except _DeadToken:
                dead += 1
                self._forget(token)
                continue
            except AmbiguousProviderError as err:
                ambiguous = ambiguous or err
                continue
            except RetryableProviderError as err:
                if retryable is None or (err.retry_after or 0) > (retryable.retry_after or 0):
                    retryable = err
                continue
            except PermanentProviderError as err:
                refused.append(self._hide(err.reason, message.devices))
                continue
            accepted = accepted or name
        if accepted is not None:
            return Delivery(provider=self.name, provider_message_id=accepted)
        if ambiguous is not None:
            raise AmbiguousProviderError(self._hide(ambiguous.reason, message.devices))
        if retryable is not None:
            raise RetryableProviderError(
                self._hide(retryable.reason, message.devices),
                retryable.status,
                retryable.retry_after,
            )
        detail = f"; {refused[0]}" if refused else ""
        raise PermanentProviderError(
            f"fcm: no registered device took it ({len(message.devices)} tried, {dead} "
            f"unregistered, {len(refused)} refused){detail}"
        )

    def _send_one(self, token: str, message: OutgoingMessage) -> str:
        """The message's name once FCM accepted it for `token`, else the ProviderError."""
        body = {
            "message": {
                "token": token,
                "notification": {"title": message.subject, "body": message.text},
                "data": {str(k): str(v) for k, v in message.data.items()},
            }
        }
        access = self._access_token()
        try:
            response = self.post(self._path, body, headers={"Authorization": f"Bearer {access}"})
        except _Unauthenticated:
            fresh = self._access_token(refused=access)
            try:
                response = self.post(self._path, body, headers={"Authorization": f"Bearer {fresh}"})
            except _Unauthenticated as err:
                raise PermanentProviderError(err.reason, err.status) from None
        doc = body_json(response)
        name = doc.get("name") if isinstance(doc, dict) else None
        return name if isinstance(name, str) else ""

    def _forget(self, token: str) -> None:
        if self.on_unregistered is None:
            return
        try:
            self.on_unregistered(token)
        except Exception as err:  # the send stands; the token is tried (and dropped) next time
            log.warning("fcm: could not forget an unregistered token: %s", type(err).__name__)

    @staticmethod
    def _hide(text: str, tokens: list[str]) -> str:
        """Device tokens out of a reason: a token is the credential to notify a device."""
        for token in tokens:
            if len(token) >= 8:
                text = text.replace(token, "[token]")
        return text

    # Reading FCM's errors --------------------------------------------------------------------

    def refine(self, response: httpx.Response) -> ProviderError | None:
        status = response.status_code
        error = _error(response)
        code = _fcm_code(error) or str(error.get("status") or "")
        detail = f"{code}: {error.get('message') or ''}".strip(": ") if error else None
        reason = self.reason(response, detail)
        if (status == 404 and code in DEAD_CODES) or (status == 400 and _token_invalid(error)):
            return _DeadToken(reason, status)
        if status == 401:
            return _Unauthenticated(reason, status)
        return self.classify(response, detail)


def _first_arg(err: Exception) -> str:
    text = str(err.args[0]) if err.args else type(err).__name__
    return " ".join(text.split())[:200]


def _error(response: httpx.Response) -> dict[str, Any]:
    doc = body_json(response)
    error = doc.get("error") if isinstance(doc, dict) else None
    return error if isinstance(error, dict) else {}


def _details(error: dict[str, Any]) -> list[dict[str, Any]]:
    details = error.get("details")
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def _fcm_code(error: dict[str, Any]) -> str | None:
    for detail in _details(error):
        if detail.get("@type") == FCM_ERROR and isinstance(detail.get("errorCode"), str):
            return str(detail["errorCode"])
    return None


def _token_invalid(error: dict[str, Any]) -> bool:
    """400 INVALID_ARGUMENT about the token itself (not the payload): FCM says "The
    registration token is not a valid FCM registration token", or a BadRequest names
    `message.token`."""
    if (_fcm_code(error) or error.get("status")) != "INVALID_ARGUMENT":
        return False
    if "registration token" in str(error.get("message") or "").lower():
        return True
    for detail in _details(error):
        if detail.get("@type") == BAD_REQUEST:
            for violation in detail.get("fieldViolations") or []:
                if isinstance(violation, dict) and violation.get("field") == "message.token":
                    return True
    return False
