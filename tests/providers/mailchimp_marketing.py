"""A stand-in for Mailchimp's Marketing API audience members, keeping its documented contract.

    with LoopbackServer(MailchimpMarketing()) as server:     # uvicorn on loopback
        server.stub.fail_next("PUT", 429, "Too Many Requests", "...")
        ...                                                  # the real client, pointed at it
        server.stub.members[subscriber_hash]                 # the audience as it stands

What it holds to (Mailchimp's Marketing API reference and its errors page):
- HTTP Basic auth, any user name, the API key as password; else 401 "API Key Invalid".
- PUT /3.0/lists/{list_id}/members/{subscriber_hash}: add or update a member. The hash must be
  the MD5 of the lower-cased `email_address`; a new member needs `status_if_new` (or `status`);
  merge fields must be the audience's own merge tags. An existing member's status changes only
  with `status`. Answer 200 with the member.
- POST .../members/{subscriber_hash}/tags: {"tags": [{"name", "status": "active"|"inactive"}]}
  on an existing member; answer 204 without a body.
- Every error is a problem document (application/problem+json: type, title, status, detail,
  instance, and `errors` naming fields): 400 "Invalid Resource" / "JSON Parse Error",
  404 "Resource Not Found", 405 "Method Not Allowed", and 429 "Too Many Requests" past 10
  simultaneous connections (no Retry-After: Mailchimp sends none).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.providers.servers import Received, Script, Stub

MC_KEY = "5e0f1c9a7b3d4e2f8a6c1b0d9e7f3a2c-us6"
"""The API key the stand-in accepts (its suffix names the data center, as Mailchimp's do)."""
LIST_ID = "a1b2c3d4e5"
MERGE_TAGS = frozenset({"FNAME", "LNAME", "CARTVAL"})
"""The audience's merge fields."""
STATUSES = frozenset({"subscribed", "unsubscribed", "cleaned", "pending", "transactional"})
CONNECTIONS = 10
"""Mailchimp's simultaneous connections per account."""
ERRORS_PAGE = "https://mailchimp.com/developer/marketing/docs/errors/"
INVALID = "The resource submitted could not be validated. For field-specific details, see the 'errors' array."  # noqa: E501
MEMBER = re.compile(r"^/3\.0/lists/(?P<list>[^/]+)/members/(?P<hash>[^/]+)(?P<tags>/tags)?/?$")


def md5(email: str) -> str:
    return hashlib.md5(email.lower().encode()).hexdigest()


def problem(
    status: int,
    title: str,
    detail: str,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Mailchimp's error answer."""
    body: dict[str, Any] = {
        "type": ERRORS_PAGE,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": str(uuid.uuid4()),
    }
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status, headers, media_type="application/problem+json; charset=utf-8")


@dataclass
class Failure:
    method: str
    status: int
    title: str
    detail: str
    headers: dict[str, str] = field(default_factory=dict)


class MailchimpMarketing(Stub):
    """The audience-members part of the Marketing API, with one audience (LIST_ID)."""

    def __init__(self, latency: float = 0.0) -> None:
        self.path = "/3.0/lists"
        self.script = Script()
        self.latency = latency
        """Seconds each request takes (to make requests overlap, or time out)."""
        self.members: dict[str, dict[str, Any]] = {}
        self.failures: list[Failure] = []
        self.in_flight = 0
        self.peak = 0
        self.app = Starlette(
            routes=[Route("/{rest:path}", self._serve, methods=["GET", "POST", "PUT", "PATCH"])]
        )

    def reset(self, latency: float = 0.0) -> None:
        self.script = Script()
        self.latency = latency
        self.members.clear()
        self.failures.clear()
        self.in_flight = self.peak = 0

    def fail_next(
        self, method: str, status: int, title: str, detail: str, **headers: str
    ) -> MailchimpMarketing:
        """Answer the next `method` request (after authentication) with this problem."""
        self.failures.append(Failure(method, status, title, detail, headers))
        return self

    def requests(self, method: str | None = None) -> list[Received]:
        return [r for r in self.script.seen if method is None or r.method == method]

    async def _serve(self, request: Request) -> Response:
        script = self.script
        body = await request.body()
        script.seen.append(Received(request.method, request.url.path, dict(request.headers), body))
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if self.in_flight > CONNECTIONS:
                return problem(
                    429,
                    "Too Many Requests",
                    f"You have exceeded the limit of {CONNECTIONS} simultaneous connections.",
                )
            deadline = time.monotonic() + self.latency
            while time.monotonic() < deadline and not script.released.is_set():
                await asyncio.sleep(0.01)
            return self._answer(request, body)
        finally:
            self.in_flight -= 1

    def _answer(self, request: Request, raw: bytes) -> Response:
        if not _authorised(request.headers.get("authorization", "")):
            return problem(
                401,
                "API Key Invalid",
                "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
            )
        for failure in self.failures:
            if failure.method == request.method:
                self.failures.remove(failure)
                return problem(failure.status, failure.title, failure.detail, None, failure.headers)
        found = MEMBER.match(request.url.path)
        if found is None or found["list"] != LIST_ID:
            return problem(404, "Resource Not Found", "The requested resource could not be found.")
        wanted = "POST" if found["tags"] else "PUT"
        if request.method != wanted:
            return problem(
                405,
                "Method Not Allowed",
                "The requested method and resource are not compatible. See the Allow header for "
                "this resource's available methods.",
                headers={"Allow": wanted},
            )
        try:
            doc = json.loads(raw)
        except ValueError:
            return problem(
                400, "JSON Parse Error", "We encountered an unspecified JSON parsing error."
            )
        if not isinstance(doc, dict):
            return problem(400, "Invalid Resource", INVALID)
        if found["tags"]:
            return self._tags(found["hash"], doc)
        return self._put(found["hash"], doc)

    def _put(self, member_hash: str, doc: dict[str, Any]) -> Response:
        email = doc.get("email_address")
        if not isinstance(email, str) or "@" not in email:
            return _invalid("email_address", "This value should be a valid email address.")
        if md5(email) != member_hash:
            return _invalid(
                "email_address", "The email address does not match the subscriber hash."
            )
        fields = doc.get("merge_fields", {})
        if not isinstance(fields, dict):
            return _invalid("merge_fields", "Schema describes object, but got another type.")
        unknown = sorted(set(fields) - MERGE_TAGS)
        if unknown:
            return problem(
                400,
                "Invalid Resource",
                "Your merge fields were invalid.",
                [{"field": tag, "message": "This merge field does not exist."} for tag in unknown],
            )
        member = self.members.get(member_hash)
        if member is None:
            status = doc.get("status") or doc.get("status_if_new")
            if status not in STATUSES:
                return _invalid("status_if_new", "The status of a new member is required.")
            member = self.members[member_hash] = {
                "id": member_hash,
                "email_address": email,
                "status": status,
                "merge_fields": {},
                "tags": set(),
                "list_id": LIST_ID,
            }
        elif doc.get("status") in STATUSES:
            member["status"] = doc["status"]
        member["merge_fields"].update(fields)
        shown = {**member, "tags": [{"name": n} for n in sorted(member["tags"])]}
        return JSONResponse(shown)

    def _tags(self, member_hash: str, doc: dict[str, Any]) -> Response:
        member = self.members.get(member_hash)
        if member is None:
            return problem(404, "Resource Not Found", "The requested resource could not be found.")
        tags = doc.get("tags")
        if not isinstance(tags, list) or not all(
            isinstance(t, dict)
            and isinstance(t.get("name"), str)
            and t["name"]
            and t.get("status") in ("active", "inactive")
            for t in tags
        ):
            return _invalid("tags", "Each tag needs a name and a status, active or inactive.")
        for tag in tags:
            if tag["status"] == "active":
                member["tags"].add(tag["name"])
            else:
                member["tags"].discard(tag["name"])
        return Response(status_code=204)


def _authorised(header: str) -> bool:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except ValueError:
        return False
    return bool(user) and password == MC_KEY


def _invalid(field_name: str, message: str) -> JSONResponse:
    return problem(400, "Invalid Resource", INVALID, [{"field": field_name, "message": message}])
