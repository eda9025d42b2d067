"""Bodies over 1 MB are refused before they are read whole, with or without Content-Length;
bodies trickled slower than the read deadline are cut off; and only an authenticated request
takes one of the API's ingest slots.

The source webhooks are open to anyone until their signature is checked, so a chunked upload
with no Content-Length must still stop at the limit (it was read whole into memory before the
size check). And 128 anonymous connections trickling a body to /v1/sources/shopify once held
every admission slot, so every genuine /v1/track was a 503 for as long as they liked. Spoken
over raw sockets on loopback, so no client library decides; bounded in count and in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid

import httpx
import pytest

from starter.api import MAX_BODY
from starter.calls import BODY_DEADLINE
from starter.settings import Settings
from tests.security.conftest import LiveStack

PATHS = [
    "/v1/track",
    "/v1/identify",
    "/v1/batch",
    "/v1/sources/shopify",
    "/v1/sources/stripe",
    "/v1/sources/webhook",
    "/v1/sources/segment",
]
CHUNK = b"x" * 65_536


async def status_line(api: LiveStack, path: str, head: str, chunks: int) -> bytes:
    """Send `head` then `chunks` chunks of 64 KiB, never the body's end; the status line."""
    host, port = api.url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        request = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {api.key}\r\n"
        writer.write(f"{request}{head}\r\n".encode())
        for _ in range(chunks):
            writer.write(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK) if "chunked" in head else CHUNK)
            await writer.drain()
        # Without the limit the server waits for the rest of the body; a minute means "never".
        return await asyncio.wait_for(reader.readline(), timeout=60)
    finally:
        writer.close()


@pytest.mark.parametrize("path", PATHS)
async def test_a_chunked_body_is_cut_off_at_the_limit(live_stack: LiveStack, path: str) -> None:
    chunks = MAX_BODY // len(CHUNK) + 1  # the last one crosses the limit; the body never ends
    line = await status_line(live_stack, path, "Transfer-Encoding: chunked\r\n", chunks)
    assert line.startswith(b"HTTP/1.1 413 "), line


@pytest.mark.parametrize("path", PATHS)
async def test_a_declared_length_over_the_limit_is_refused_unread(
    live_stack: LiveStack, path: str
) -> None:
    line = await status_line(live_stack, path, f"Content-Length: {MAX_BODY + 1}\r\n", 0)
    assert line.startswith(b"HTTP/1.1 413 "), line


async def test_a_body_just_under_the_limit_is_read(live_stack: LiveStack) -> None:
    """The control: the limit is the limit, not lower."""
    padding = "x" * (MAX_BODY - 200)
    call = {"type": "track", "event": "Page Viewed", "userId": "u-big-body",
            "properties": {"padding": padding}}  # fmt: skip
    async with httpx.AsyncClient(base_url=live_stack.url) as http:
        answer = await http.post(
            "/v1/track",
            content=json.dumps(call).encode(),
            headers={"Authorization": f"Bearer {live_stack.key}"},
        )
    assert answer.status_code == 200, answer.text[:200]


SLOTS = Settings.model_fields["api_max_in_flight"].default
"""The live stack's admission limit (the default, 128): ingest requests worked on at once."""

SETTLE = 1.0
"""Seconds for the server to take in every slow connection's headers."""


async def trickle(
    api: LiveStack, path: str, *, key: bool
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A POST that declares 1000 bytes of body and sends 10: a body that never arrives."""
    host, port = api.url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    auth = f"Authorization: Bearer {api.key}\r\n" if key else ""
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\n"
        f"X-Shopify-Topic: orders/create\r\nX-Shopify-Hmac-Sha256: AAAA\r\n"
        f'Content-Length: 1000\r\n\r\n{{"id": 1, '.encode()
    )
    await writer.drain()
    return reader, writer


async def track(http: httpx.AsyncClient, api: LiveStack) -> httpx.Response:
    user = f"u-{uuid.uuid4().hex[:10]}"
    return await http.post(
        "/v1/track",
        json={"userId": user, "event": "Page Viewed"},
        headers={"Authorization": f"Bearer {api.key}"},
    )


async def answered_and_closed(reader: asyncio.StreamReader) -> bytes:
    """The status line, once the server has answered and closed the connection (the rest of
    the body is never read, so nothing of the connection is left)."""
    line = await reader.readline()
    await reader.read()  # to EOF: the server closed its side
    return line


async def status_lines(
    connections: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]],
) -> list[bytes]:
    """Each connection's status line, waiting at most the deadline and a margin; then closed."""
    try:
        return await asyncio.wait_for(
            asyncio.gather(*(answered_and_closed(reader) for reader, _ in connections)),
            timeout=BODY_DEADLINE + 10,
        )
    finally:
        for _, writer in connections:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def test_anonymous_trickled_source_bodies_take_no_slot_and_are_cut_off(
    live_stack: LiveStack,
) -> None:
    connections = [
        await trickle(live_stack, "/v1/sources/shopify", key=False) for _ in range(SLOTS)
    ]
    await asyncio.sleep(SETTLE)
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=live_stack.url, timeout=30) as http:
        answers = [await track(http, live_stack) for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5, answers[0].text
    lines = await status_lines(connections)
    assert all(line.startswith(b"HTTP/1.1 408 ") for line in lines), set(lines)
    assert time.monotonic() - started < BODY_DEADLINE + 10


async def test_an_anonymous_slow_track_is_refused_at_its_headers(live_stack: LiveStack) -> None:
    """Without the API key, the body is never read: a 401 at once, not at the deadline."""
    connections = [await trickle(live_stack, "/v1/track", key=False) for _ in range(SLOTS)]
    started = time.monotonic()
    lines = await status_lines(connections)
    assert all(line.startswith(b"HTTP/1.1 401 ") for line in lines), set(lines)
    assert time.monotonic() - started < BODY_DEADLINE


async def test_a_slow_authenticated_body_is_cut_off_at_the_deadline_and_frees_its_slot(
    live_stack: LiveStack,
) -> None:
    """A key holder is trusted to count against the limit, but not for longer than the read
    deadline: every slot it held is free again after the 408s."""
    connections = [await trickle(live_stack, "/v1/track", key=True) for _ in range(SLOTS)]
    await asyncio.sleep(SETTLE)
    async with httpx.AsyncClient(base_url=live_stack.url, timeout=30) as http:
        busy = await track(http, live_stack)
        assert busy.status_code == 503  # the control: they do hold the slots meanwhile
        lines = await status_lines(connections)
        assert all(line.startswith(b"HTTP/1.1 408 ") for line in lines), set(lines)
        answers = [await track(http, live_stack) for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5, answers[0].text
