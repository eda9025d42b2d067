"""A lean HTTP/1.1 load client for the benchmarks: keep-alive connections, nothing else.

On a 2-core machine the load generator shares the cores with the API it measures; httpx costs
more CPU per request than our API does, and that cost would be billed to the API. Real senders
(Segment, Shopify) run elsewhere. This client writes each request as one buffer and reads the
status line, headers and a Content-Length body: about what wrk does, in Python. It speaks only
to our own server on loopback; it is not a general HTTP client.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any


class HTTPError(Exception):
    """The server closed the connection or answered something this client cannot read."""


class LoopbackClient:
    """A pool of keep-alive connections to one host; `post_json` returns (status, body)."""

    def __init__(self, host: str, port: int, headers: dict[str, str], size: int) -> None:
        self.host, self.port = host, port
        self.fixed = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )
        self.size = size
        self.opened = 0

    async def post_json(self, path: str, payload: Any) -> tuple[int, bytes]:
        body = json.dumps(payload, separators=(",", ":")).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.fixed}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        for attempt in range(2):  # a kept-alive connection the server closed: once more, fresh
            reader, writer = await self._connection()
            try:
                writer.write(head + body)
                status, answer, keep = await _response(reader)
            except (HTTPError, ConnectionError, asyncio.IncompleteReadError):
                writer.close()
                self.opened -= 1
                if attempt:
                    raise
                continue
            if keep:
                self.idle.put_nowait((reader, writer))
            else:
                writer.close()
                self.opened -= 1
            return status, answer
        raise AssertionError("unreachable")

    async def close(self) -> None:
        while not self.idle.empty():
            _, writer = self.idle.get_nowait()
            writer.close()

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.idle.empty() and self.opened < self.size:
            self.opened += 1
            try:
                return await asyncio.open_connection(self.host, self.port)
            except OSError:
                self.opened -= 1
                raise
        return await self.idle.get()


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise HTTPError(f"not an HTTP status line: {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" not in headers:
        raise HTTPError("answer without Content-Length")
    body = await reader.readexactly(int(headers["content-length"]))
    return int(parts[1]), body, headers.get("connection", "").lower() != "close"
