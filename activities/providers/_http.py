"""What the HTTP providers share: one httpx client each, and one reading of failures.

Transport failures: a refused connection or a connect/pool timeout means nothing reached the
provider (Retryable); a read or write timeout or a dropped connection after the request went
out means it may have the message (Ambiguous). Statuses: 408, 429 and 5xx are Retryable (with
Retry-After), any other non-success is Permanent. A provider refines that in `refine`, e.g.
Mandrill's errors that arrive as HTTP 500, or SendGrid's temporary 403.
"""

from __future__ import annotations

import json
import time
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from pydantic_core import to_jsonable_python

from activities.providers.base import (
    AmbiguousProviderError,
    Delivery,
    OutgoingMessage,
    PermanentProviderError,
    ProviderError,
    RetryableProviderError,
)

RETRYABLE_STATUSES = frozenset({408, 429})
"""Plus every 5xx."""
USER_AGENT = "temporal-journeys"
EXCERPT = 300
"""Characters of a response body kept in an error reason."""


def retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After in seconds, from delay-seconds ("7") or an HTTP date; None if unreadable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN is unreadable
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT; parsedate gives naive for "-0000"
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def dumps(body: Any) -> bytes:
    """Compact JSON; values JSON has no type for (dates, decimals) as pydantic writes them,
    anything else as its str(), so an odd render-context value never fails a send."""
    return json.dumps(to_jsonable_python(body, fallback=str), separators=(",", ":")).encode()


def body_json(response: httpx.Response) -> Any:
    """The response's JSON, or None when it has none (error pages, empty 202s)."""
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        return None


class HttpProvider:
    """Base for providers that POST JSON to one API; subclasses build the body and read the
    answer. Secrets given as `secrets` are redacted from every error reason."""

    name = "http"
    idempotent = False
    default_base_url = ""

    def __init__(
        self,
        *,
        base_url: str | None,
        timeout: float,
        headers: dict[str, str] | None = None,
        secrets: tuple[str, ...] = (),
    ) -> None:
        self._secrets = tuple(s for s in secrets if s)
        self._client = httpx.Client(
            base_url=(base_url or self.default_base_url).rstrip("/"),
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": USER_AGENT, **(headers or {})},
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._client.base_url}>"

    def __enter__(self) -> HttpProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def send(self, message: OutgoingMessage) -> Delivery:
        raise NotImplementedError

    # Requests ----------------------------------------------------------------------------

    def post(
        self,
        url: str,
        body: Any,
        *,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> httpx.Response:
        """POST `body` as JSON; a successful (2xx) response, or the ProviderError it means."""
        content = body if isinstance(body, bytes) else dumps(body)
        return self.post_bytes(url, content, {"Content-Type": content_type, **(headers or {})})

    def post_bytes(self, url: str, content: bytes, headers: dict[str, str]) -> httpx.Response:
        try:
            response = self._client.post(url, content=content, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as err:
            raise RetryableProviderError(
                f"{self.name}: cannot connect ({type(err).__name__})"
            ) from None
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as err:
            raise AmbiguousProviderError(
                f"{self.name}: no answer after sending ({type(err).__name__})"
            ) from None
        except httpx.HTTPError as err:  # e.g. a malformed base URL: fix the settings
            raise PermanentProviderError(
                f"{self.name}: request failed ({type(err).__name__})"
            ) from None
        if response.is_success:
            return response
        raise self.refine(response) or self.classify(response)

    # Reading failures --------------------------------------------------------------------

    def refine(self, response: httpx.Response) -> ProviderError | None:
        """A provider's own reading of a failed response; None falls back to `classify`."""
        return None

    def classify(self, response: httpx.Response, detail: str | None = None) -> ProviderError:
        """408/429/5xx: Retryable with Retry-After; anything else: Permanent."""
        status = response.status_code
        reason = self.reason(response, detail)
        if status in RETRYABLE_STATUSES or status >= 500:
            return RetryableProviderError(
                reason, status, retry_after(response.headers.get("Retry-After"))
            )
        return PermanentProviderError(reason, status)

    def reason(self, response: httpx.Response, detail: str | None = None) -> str:
        """`name: HTTP status: detail`, the detail cut short and with secrets removed."""
        text = detail if detail is not None else response.text
        text = " ".join(text.split())[:EXCERPT]
        return self.redact(f"{self.name}: HTTP {response.status_code}: {text or 'no body'}")

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text
