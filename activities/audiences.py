"""The `audience` channel: a journey step keeps its user's merge fields and tags in a Mailchimp
audience, so a team whose emails live in Mailchimp's Customer Journey Builder drives them from
our journeys (seed 003: sync person properties to audience fields and tags, and let Mailchimp's
journeys trigger on them):

    await self.send(
        "cart_abandoned", channel="audience",
        tags=["cart_abandoner"], merge_fields={"CARTVAL": self.value()},
    )

Each such step is two requests to the Mailchimp Marketing API, with subscriber_hash the MD5 of
the lower-cased email address:

    PUT  /3.0/lists/{list_id}/members/{subscriber_hash}        add or update the member:
         email_address, status_if_new, merge_fields
    POST /3.0/lists/{list_id}/members/{subscriber_hash}/tags   (with tags or remove_tags)
         {"tags": [{"name": ..., "status": "active" | "inactive"}]}, answered 204

Authentication is HTTP Basic, any user name and the API key as password; the key's suffix
(`...-us6`) names the data center, https://us6.api.mailchimp.com. A member's status is never
changed: a new one gets `status_if_new` (the setting after a marketing step, "transactional"
after a transactional one), an existing one keeps whatever consent Mailchimp holds.

Exactly once in effect: both requests are idempotent (a PUT sets, a tag set active twice is one
tag), so `idempotent` is True: a request that went unanswered is asked again, and the send
activity's ledger keeps the step once.

Mailchimp's errors are problem documents (`application/problem+json`: type, title, status,
detail, instance, and errors[] naming fields). 429 (more than 10 simultaneous connections per
account; Mailchimp sends no Retry-After, so Temporal's backoff spaces the retries, and a
Retry-After would be honoured) and 5xx are retried by the activity's retry policy; any other
4xx (a bad key, an unknown audience, a merge field the audience lacks) is permanent. Each
worker keeps at most MAX_CONNECTIONS requests in flight, under Mailchimp's limit of 10.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import httpx

from activities.providers._http import HttpProvider, body_json, dumps
from activities.providers.base import (
    AmbiguousProviderError,
    Delivery,
    OutgoingMessage,
    PermanentProviderError,
    ProviderConfigError,
    ProviderError,
    RetryableProviderError,
)

__all__ = [
    "MAX_CONNECTIONS",
    "AudienceChange",
    "AudienceStep",
    "MailchimpAudience",
    "data_center",
    "mailchimp_audience",
    "subscriber_hash",
]

MAX_CONNECTIONS = 8
"""Requests one worker has in flight to Mailchimp at once; Mailchimp refuses an 11th (429)."""

Status = Literal["subscribed", "pending"]


def subscriber_hash(email: str) -> str:
    """Mailchimp's member ID: the MD5 hex digest of the lower-cased email address."""
    return hashlib.md5(email.lower().encode("utf-8"), usedforsecurity=False).hexdigest()


def data_center(api_key: str) -> str | None:
    """The data center a Mailchimp API key names by its suffix (`...-us6` -> "us6"), if any."""
    _, dash, suffix = api_key.rpartition("-")
    return suffix if dash and suffix.isalnum() else None


@dataclass(frozen=True)
class AudienceChange:
    """What one step asks of the audience, read from the `send` call's values."""

    merge_fields: dict[str, Any]
    tags: tuple[str, ...]
    remove_tags: tuple[str, ...]

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> AudienceChange:
        """`merge_fields` (merge tag -> value), `tags` and `remove_tags` (tag names) from a
        step's values; PermanentProviderError naming the one of another shape."""
        fields = values.get("merge_fields") or {}
        if not isinstance(fields, dict) or not all(isinstance(k, str) and k for k in fields):
            raise PermanentProviderError(
                "audience: `merge_fields` must map merge tags (e.g. CARTVAL) to values"
            )
        return cls(dict(fields), _names(values, "tags"), _names(values, "remove_tags"))


def _names(values: Mapping[str, Any], key: str) -> tuple[str, ...]:
    names = values.get(key) or ()
    if isinstance(names, str) or not isinstance(names, list | tuple):
        raise PermanentProviderError(f"audience: `{key}` must be a list of tag names")
    if not all(isinstance(name, str) and name.strip() for name in names):
        raise PermanentProviderError(f"audience: `{key}` must hold non-empty tag names")
    return tuple(names)


class MailchimpAudience(HttpProvider):
    """One Mailchimp audience, updated member by member from a worker's activity threads."""

    name = "mailchimp_audience"
    idempotent = True

    def __init__(
        self,
        api_key: str,
        list_id: str,
        *,
        base_url: str | None = None,
        timeout: float = 10.0,
        status_if_new: Status = "subscribed",
    ) -> None:
        dc = data_center(api_key)
        if base_url is None and dc is None:
            raise ProviderConfigError(
                "the Mailchimp API key has no data center suffix (like -us6): set "
                "JOURNEYS_MAILCHIMP_BASE_URL, or copy the whole key"
            )
        credentials = base64.b64encode(f"journeys:{api_key}".encode()).decode("ascii")
        super().__init__(
            base_url=base_url or f"https://{dc}.api.mailchimp.com",
            timeout=timeout,
            headers={"Authorization": f"Basic {credentials}", "Accept": "application/json"},
            secrets=(api_key, credentials),
        )
        self._members = f"/3.0/lists/{quote(list_id, safe='')}/members"
        self._status_if_new = status_if_new
        self._timeout = timeout
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def for_step(self, *, marketing: bool) -> AudienceStep:
        """This audience as one step's transport (the send activity's `send(message)`)."""
        return AudienceStep(self, marketing)

    def send(self, message: OutgoingMessage, *, marketing: bool = True) -> Delivery:
        """Add or update the member `message.to`, then set its tags; a ProviderError if not."""
        change = AudienceChange.of(message.properties)
        member_hash = subscriber_hash(message.to)
        member = f"{self._members}/{member_hash}"
        body: dict[str, Any] = {
            "email_address": message.to,
            "status_if_new": self._status_if_new if marketing else "transactional",
        }
        if change.merge_fields:
            body["merge_fields"] = change.merge_fields
        answer = body_json(self._request("PUT", member, body))
        tags = [{"name": n, "status": "active"} for n in change.tags]
        tags += [{"name": n, "status": "inactive"} for n in change.remove_tags]
        if tags:
            self._request("POST", f"{member}/tags", {"tags": tags})
        member_id = answer.get("id") if isinstance(answer, dict) else None
        return Delivery(provider=self.name, provider_message_id=str(member_id or member_hash))

    def _request(self, method: str, url: str, body: Any) -> httpx.Response:
        """One request within this worker's connection budget; the ProviderError a failure is."""
        if not self._slots.acquire(timeout=self._timeout):
            raise RetryableProviderError(f"{self.name}: {MAX_CONNECTIONS} requests in flight")
        try:
            response = self._client.request(
                method, url, content=dumps(body), headers={"Content-Type": "application/json"}
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as err:
            raise RetryableProviderError(
                f"{self.name}: cannot connect ({type(err).__name__})"
            ) from None
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as err:
            raise AmbiguousProviderError(
                f"{self.name}: no answer after sending ({type(err).__name__})"
            ) from None
        except httpx.HTTPError as err:  # a malformed base URL, say: fix the settings
            raise PermanentProviderError(
                f"{self.name}: request failed ({type(err).__name__})"
            ) from None
        finally:
            self._slots.release()
        if response.is_success:
            return response
        raise self.refine(response) or self.classify(response)

    def refine(self, response: httpx.Response) -> ProviderError | None:
        """Mailchimp's problem document read into the reason: title, detail, fields."""
        problem = body_json(response)
        if not isinstance(problem, dict) or not (problem.get("title") or problem.get("detail")):
            return None
        detail = ": ".join(str(problem[k]) for k in ("title", "detail") if problem.get(k))
        fields = problem.get("errors")
        if isinstance(fields, list):
            named = [
                f"{e.get('field') or '-'}: {e.get('message') or ''}".strip()
                for e in fields
                if isinstance(e, dict)
            ]
            if named:
                detail += f" ({'; '.join(named)})"
        return self.classify(response, detail)


@dataclass(frozen=True)
class AudienceStep:
    """The audience bound to one step's `marketing`, which decides a new member's status."""

    audience: MailchimpAudience
    marketing: bool

    @property
    def name(self) -> str:
        return self.audience.name

    @property
    def idempotent(self) -> bool:
        return self.audience.idempotent

    def send(self, message: OutgoingMessage) -> Delivery:
        return self.audience.send(message, marketing=self.marketing)


def mailchimp_audience(
    api_key: str | None,
    list_id: str | None,
    *,
    base_url: str | None = None,
    status_if_new: Status = "subscribed",
    timeout: float = 10.0,
) -> MailchimpAudience:
    """The audience the settings describe; ProviderConfigError naming the one that is missing."""
    key, audience = (api_key or "").strip(), (list_id or "").strip()
    if not key:
        raise ProviderConfigError("the audience channel needs JOURNEYS_MAILCHIMP_API_KEY")
    if not audience:
        raise ProviderConfigError("the audience channel needs JOURNEYS_MAILCHIMP_LIST_ID")
    return MailchimpAudience(
        key,
        audience,
        base_url=base_url or None,
        timeout=timeout,
        status_if_new=status_if_new,
    )
