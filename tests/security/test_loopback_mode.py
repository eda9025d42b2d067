"""Keyless loopback mode: no JOURNEYS_API_KEY, the API on 127.0.0.1, and a browser beside it.

Any web page the developer opens can send requests to 127.0.0.1. Two ways it could act on the
API without a key: DNS rebinding (its own host name made to resolve to 127.0.0.1, so its
scripts read the answers as same-origin; the requests then carry its host name in `Host`), and
a cross-site form or `no-cors` fetch (which can only send form and text content types). So
without a key the API answers only a `Host` naming this machine (400 otherwise), and takes a
JSON call only as `application/json` (415 otherwise). Real uvicorn on loopback throughout.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from starter.api import create_app
from starter.settings import Settings
from tests.conftest import serving
from tests.engine.sample_journeys import Cart

REBINDING_HOSTS = [
    "evil.example",
    "evil.example:8000",
    "127.0.0.1.evil.example",
    "localhost.evil.example",
    "10.0.0.5",
    "",
]
CROSS_SITE_TYPES = [
    "text/plain",  # <form enctype="text/plain">: a body that can be made to parse as JSON
    "text/plain;charset=UTF-8",  # fetch(url, {mode: "no-cors", body: "..."})
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    None,  # no Content-Type at all
]


@pytest.fixture
async def keyless(stack_for: Any) -> AsyncIterator[tuple[str, Any]]:
    """The API with no key on a loopback port, and its stack."""
    stack = await stack_for(Cart)
    settings = Settings(_env_file=None, task_queue=stack.router.task_queue)  # type: ignore[call-arg]
    assert settings.api_key is None and settings.api_host == "127.0.0.1"
    app = create_app(settings, client=stack.client, store=stack.store, journeys=[Cart])
    async with serving(app) as url:
        yield url, stack


def track(user: str) -> dict[str, Any]:
    return {"userId": user, "event": "Product Added", "properties": {"sku": "s", "price": 20},
            "messageId": uuid.uuid4().hex}  # fmt: skip


async def test_a_host_that_is_not_this_machine_is_refused(keyless):
    url, stack = keyless
    user = f"rebound-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=url, timeout=30) as page:
        for host in REBINDING_HOSTS:
            headers = {"Host": host}
            answers = [
                await page.get("/dashboard", headers=headers),
                await page.get("/outbox", headers=headers),
                await page.get(f"/v1/users/{user}/messages", headers=headers),
                await page.post("/v1/track", json=track(user), headers=headers),
                await page.get("/healthz", headers=headers),
            ]
            assert [a.status_code for a in answers] == [400] * 5, (host, answers)
            assert "Host" in answers[0].json()["detail"]
    assert stack.store.event_summary(user, "Product Added") is None  # nothing was taken


async def test_loopback_names_are_served(keyless):
    url, stack = keyless
    port = httpx.URL(url).port
    async with httpx.AsyncClient(base_url=url, timeout=30) as local:
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", f"[::1]:{port}",
                     "127.0.0.2"):  # fmt: skip
            user = f"local-{uuid.uuid4().hex[:8]}"
            headers = {"Host": host}
            assert (await local.get("/dashboard", headers=headers)).status_code == 200, host
            answer = await local.post("/v1/track", json=track(user), headers=headers)
            assert answer.status_code == 200, (host, answer.text)
            assert stack.store.event_summary(user, "Product Added") is not None


async def test_a_cross_site_form_or_text_post_is_415_and_takes_nothing(keyless):
    url, stack = keyless
    user = f"csrf-{uuid.uuid4().hex[:8]}"
    # What <form method="post" enctype="text/plain"> sends for one field named
    # '{"userId": "…", "event": "Product Added", "properties": {"x": "' with the value '"}}':
    # `name=value` and a line break, which is a valid track call.
    name = f'{{"userId": "{user}", "event": "Product Added", "properties": {{"x": "'
    body = f'{name}="}}}}\r\n'.encode()
    async with httpx.AsyncClient(base_url=url, timeout=30) as page:
        for content_type in CROSS_SITE_TYPES:
            headers = {"Content-Type": content_type} if content_type else {}
            for path in ("/v1/track", "/v1/identify", "/v1/batch",
                         f"/v1/users/{user}/messages/1/read"):  # fmt: skip
                answer = await page.post(path, content=body, headers=headers)
                assert answer.status_code == 415, (path, content_type, answer.text)
                assert "application/json" in answer.json()["detail"]
    assert stack.store.event_summary(user, "Product Added") is None


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"]
)
async def test_a_json_call_is_taken(keyless, content_type):
    url, stack = keyless
    user = f"json-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=url, timeout=30) as local:
        answer = await local.post(
            "/v1/track",
            content=httpx.Request("POST", url, json=track(user)).content,
            headers={"Content-Type": content_type},
        )
    assert answer.status_code == 200, answer.text
    assert stack.store.event_summary(user, "Product Added") is not None


async def test_signed_sources_and_unsubscribe_links_keep_their_own_content_types(keyless):
    """Not JSON calls: a source is checked by its signature (404 here, none configured), and
    RFC 8058's one-click unsubscribe is a form post (400 for a bad link, never 415)."""
    url, _ = keyless
    async with httpx.AsyncClient(base_url=url, timeout=30) as local:
        source = await local.post("/v1/sources/shopify", content=b"x",
                                  headers={"Content-Type": "text/plain"})  # fmt: skip
        assert source.status_code == 404
        one_click = await local.post("/u/not-a-token", data={"List-Unsubscribe": "One-Click"})
        assert one_click.status_code == 400


async def test_with_a_key_any_host_and_content_type_are_served_to_the_key_holder(api_for):
    """The checks are keyless mode's: behind a proxy under its own host name, and for senders
    that send JSON as text/plain, the Bearer key is what counts."""
    api = await api_for(Cart)
    user = f"keyed-{uuid.uuid4().hex[:8]}"
    answer = await api.http.post(
        "/v1/track",
        content=httpx.Request("POST", api.url, json=track(user)).content,
        headers={"Host": "journeys.example.com", "Content-Type": "text/plain"},
    )
    assert answer.status_code == 200, answer.text
