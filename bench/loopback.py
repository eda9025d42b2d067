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
import time
from typing import Any

KEEPALIVE = 2.0
"""Seconds an idle connection is reused; uvicorn closes them after 5."""

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class HTTPError(Exception):
    """The server closed the connection or answered something this client cannot read."""


class LoopbackClient:
    """A pool of keep-alive connections to one host; `post_json` returns (status, body)."""

    def __init__(self, host: str, port: int, headers: dict[str, str], size: int) -> None:
        self.host, self.port = host, port
        self.fixed = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.idle: list[tuple[float, Connection]] = []  # (last used, connection), newest last
        self.free = asyncio.Semaphore(size)  # one request per connection at a time

    async def post_json(self, path: str, payload: Any) -> tuple[int, bytes]:
        body = json.dumps(payload, separators=(",", ":")).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.fixed}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        async with self.free:
            for fresh in (False, True):  # a connection the server closed: once more, on a new one
                reader, writer = await self._connection(fresh)
                try:
                    writer.write(head + body)
                    status, answer, keep = await _response(reader)
                except (HTTPError, ConnectionError, asyncio.IncompleteReadError):
                    writer.close()
                    if fresh:
                        raise
                    continue
                if keep:
                    self.idle.append((time.monotonic(), (reader, writer)))
                else:
                    writer.close()
                return status, answer
        raise AssertionError("unreachable")

    async def close(self) -> None:
        for _, (_, writer) in self.idle:
            writer.close()
        self.idle.clear()

    async def _connection(self, fresh: bool) -> Connection:
        while self.idle and not fresh:
            used, connection = self.idle.pop()
            if time.monotonic() - used < KEEPALIVE:
                return connection
            connection[1].close()
        return await asyncio.open_connection(self.host, self.port)


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
