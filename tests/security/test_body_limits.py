"""Bodies over 1 MB are refused before they are read whole, with or without Content-Length.

The source webhooks answer before any signature is checked, so they are open to anyone: a
chunked upload with no Content-Length must still stop at the limit (it was read whole into
memory before the size check). Spoken over a raw socket, so no client library decides.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from starter.api import MAX_BODY
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
