"""What the HTTP providers share: one client each, and one reading of status codes."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx

from activities.providers.base import (
    AmbiguousProviderError,
    PermanentProviderError,
    RetryableProviderError,
)

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class HttpProvider:
    """Base for providers that POST JSON: classifies failures the same way for all."""

    name = "http"
    idempotent = False
    default_base_url = ""

    def __init__(self, base_url: str | None, timeout: float, headers: dict[str, str]) -> None:
        self.client = httpx.Client(
            base_url=(base_url or self.default_base_url).rstrip("/"),
            timeout=timeout,
            headers={"User-Agent": "temporal-journeys", **headers},
        )

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        """POST; transport failures become Retryable (nothing sent) or Ambiguous (maybe sent)."""
        try:
            response = self.client.post(path, json=body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as err:
            raise RetryableProviderError(
                f"{self.name}: cannot connect ({type(err).__name__})"
            ) from err
        except (
            httpx.ReadTimeout,
            httpx.WriteTimeout,
            httpx.RemoteProtocolError,
            httpx.ReadError,
        ) as err:
            raise AmbiguousProviderError(
                f"{self.name}: no answer after sending ({type(err).__name__})"
            ) from err
        reason = self.permanent_reason(response)
        if reason is not None:
            raise PermanentProviderError(f"{self.name}: {reason}", response.status_code)
        if response.status_code in RETRY_STATUSES:
            raise RetryableProviderError(
                f"{self.name}: HTTP {response.status_code}",
                response.status_code,
                retry_after(response.headers.get("retry-after")),
            )
        return response

    def permanent_reason(self, response: httpx.Response) -> str | None:
        """A provider whose errors hide behind a 5xx says here which ones are permanent."""
        return None

    def refuse(self, response: httpx.Response, detail: str, suppress: bool = False) -> None:
        raise PermanentProviderError(
            f"{self.name}: HTTP {response.status_code}: {detail[:300]}",
            response.status_code,
            suppress_recipient=suppress,
        )

    def close(self) -> None:
        self.client.close()


def retry_after(value: str | None) -> float | None:
    """Retry-After in seconds, from either of its forms (delta-seconds or an HTTP date)."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
