"""The codec endpoint: operators read decrypted payloads in the Temporal Web UI and CLI.

Temporal's remote codec protocol: `POST <endpoint>/decode` (and `/encode`) with the JSON of a
`temporalio.api.common.v1.Payloads` message, `{"payloads": [{"metadata": {...}, "data": "..."}]}`
(bytes in base64), answered with the same shape; the Web UI also sends `X-Namespace` and, from
a browser on another origin, a CORS preflight first. The payloads are decoded with the codec of
starter/codec.py (the same keys as the worker); payloads that are not encrypted come back as
they are.

    POST /codec/decode, /codec/encode   mounted by the API: `Authorization: Bearer <API key>`
                                        (or nothing, only while the API runs keyless on loopback)

It decrypts personal data, so it is never open: on the API it takes the API key, which a
script or the `temporal` CLI sends (`--codec-endpoint .../codec --codec-auth "Bearer $KEY"`).
The Web UI cannot send that key (its "pass access token" option sends the UI's own login token,
and only over HTTPS), so for the UI there is the local codec server: the same endpoint without
a key, served on loopback only, where the keys are; `journeys dev` runs one and points its Web
UI at it, and an operator runs one on the host and reaches it over an SSH tunnel
(`python -m starter.codec_server`, docs/security.md). Either way, CORS admits the Temporal UI's
origin (JOURNEYS_TEMPORAL_UI_URL) and nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from starter.browser_auth import loopback_host
from starter.calls import MAX_BODY, BodyTooLarge, BodyTooSlow, read_body
from starter.codec import ClearCodec, EncryptionCodec, PayloadDecodeError, payload_codec
from starter.settings import Settings, is_loopback

PREFIX = "/codec"
JSON = "application/json"
ALLOWED_HEADERS = "authorization, content-type, x-namespace"
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def codec_router(settings: Settings, *, keyless: bool = False) -> APIRouter:
    """`/codec/decode` and `/codec/encode`, with CORS for the Temporal UI's origin.

    `keyless`: no credential (the local codec server, served on loopback only). Otherwise the
    API key as Bearer, unless the API has none and runs on loopback (`journeys api` refuses to
    run keyless anywhere else; this refuses too, should it be served so another way)."""
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    origins = ui_origins(settings)
    # A malformed JOURNEYS_PAYLOAD_KEYS fails at startup; without keys, payloads stay as they are.
    codec = payload_codec(settings) or ClearCodec()

    def cors(request: Request, preflight: bool = False) -> dict[str, str]:
        origin = request.headers.get("origin")
        if origin is None or origin not in origins:
            return {}
        headers = {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",  # the UI's "include credentials"
            "Vary": "Origin",
        }
        if preflight:
            headers |= {
                "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                "Access-Control-Max-Age": "600",
            }
        return headers

    def refusal(request: Request) -> JSONResponse | None:
        """401 unless the caller may read decrypted payloads; the key is never echoed.

        Keyless, only requests addressed to a loopback name are served: a web page that
        rebinds its own host name to 127.0.0.1 (DNS rebinding) sends its own name as Host."""
        key = settings.api_key
        if keyless or key is None:
            if not _to_loopback(request):
                detail = "the keyless codec endpoint answers requests to a loopback name only"
                return JSONResponse({"detail": detail}, status_code=400)
            if keyless or is_loopback(settings.api_host):
                return None
            detail = "set JOURNEYS_API_KEY: the codec endpoint is not served keyless off loopback"
        else:
            header = request.headers.get("authorization", "")
            scheme, _, token = header.partition(" ")
            expected = key.get_secret_value().encode()
            if scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), expected):
                return None
            detail = "missing or wrong API key (Authorization: Bearer <JOURNEYS_API_KEY>)"
        return JSONResponse(
            {"detail": detail},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer", **cors(request)},
        )

    async def convert(request: Request, operation: str) -> Response:
        refused = refusal(request)
        if refused is not None:
            return refused  # before a byte of the body is read
        headers = cors(request)
        if request.headers.get("content-type", "").partition(";")[0].strip() != JSON:
            detail = f"send the payloads as {JSON}"
            return JSONResponse({"detail": detail}, status_code=415, headers=headers)
        namespace = request.headers.get("x-namespace")
        if namespace and namespace != settings.temporal_namespace:
            detail = f"this codec serves namespace {settings.temporal_namespace!r}"
            return JSONResponse({"detail": detail}, status_code=403, headers=headers)
        try:
            body = await read_body(request.stream(), limit=MAX_BODY)
        except BodyTooLarge:
            detail = f"body over {MAX_BODY} bytes"
            return JSONResponse({"detail": detail}, status_code=413, headers=headers)
        except BodyTooSlow:
            return JSONResponse({"detail": "body too slow"}, status_code=408, headers=headers)
        try:
            payloads = json_format.Parse(body, Payloads(), ignore_unknown_fields=True)
        except (json_format.ParseError, UnicodeDecodeError, ValueError):
            detail = 'not a JSON {"payloads": [...]} of Temporal payloads'
            return JSONResponse({"detail": detail}, status_code=400, headers=headers)
        try:
            converted = _convert(codec, operation, payloads)
        except PayloadDecodeError as err:  # names the key ID, never key material
            return JSONResponse({"detail": str(err)}, status_code=422, headers=headers)
        return JSONResponse(json_format.MessageToDict(converted), headers=headers)

    @router.post("/decode")
    async def decode(request: Request) -> Response:
        """Encrypted payloads decrypted; others as they are."""
        return await convert(request, "decode")

    @router.post("/encode")
    async def encode(request: Request) -> Response:
        """Payloads encrypted with the current key (the UI encodes what it sends, e.g. a
        signal); as they are when no key is configured."""
        return await convert(request, "encode")

    @router.options("/decode")
    @router.options("/encode")
    async def preflight(request: Request) -> Response:
        """The browser's CORS preflight: the Temporal UI's origin only, no credential needed."""
        headers = cors(request, preflight=True)
        if request.headers.get("origin") is not None and not headers:
            return Response(status_code=403)
        return Response(status_code=204, headers=headers)

    return router


def _to_loopback(request: Request) -> bool:
    """Whether the request's Host names this machine (localhost, 127.0.0.1, [::1])."""
    return loopback_host(request.headers.get("host", ""))


def _convert(codec: EncryptionCodec | ClearCodec, operation: str, payloads: Payloads) -> Payloads:
    items = list(payloads.payloads)
    if operation == "decode":
        return Payloads(payloads=codec.decode_sync(items))
    return Payloads(payloads=codec.encode_sync(items))


def ui_origins(settings: Settings) -> frozenset[str]:
    """The Temporal UI's origin (JOURNEYS_TEMPORAL_UI_URL, default localhost on its port); for a
    loopback UI, the same port under each loopback name (a browser may open either)."""
    parts = urlsplit(settings.temporal_ui())
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    if is_loopback(host):
        return frozenset(f"{parts.scheme}://{name}{port}" for name in _LOOPBACK_NAMES)
    return frozenset({f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"})


def codec_app(settings: Settings) -> FastAPI:
    """The local codec server: `/codec/decode` and `/codec/encode` without a key, for a Temporal
    Web UI that cannot send one. Serve it on loopback only (`LocalCodecServer` does)."""
    app = FastAPI(title="journeys codec", openapi_url=None, docs_url=None, redoc_url=None)
    app.include_router(codec_router(settings, keyless=True))
    return app


class LocalCodecServer:
    """`codec_app` on a loopback port, bound at once (so its endpoint can be given to the Web
    UI before it serves) and served by `serving()`."""

    def __init__(self, settings: Settings, host: str = "127.0.0.1", port: int = 0) -> None:
        if not is_loopback(host):
            raise ValueError(f"the local codec server serves loopback only, not {host!r}")
        self.socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((host, port))
        bound = self.socket.getsockname()[1]
        self.endpoint = f"http://{f'[{host}]' if ':' in host else host}:{bound}{PREFIX}"
        """What the Web UI's codec endpoint is set to (it appends /decode)."""
        self.app = codec_app(settings)
        self._server: uvicorn.Server
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Serve in the background, from the socket bound at construction."""
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off")
        self._server = _Quiet(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[self.socket]))
        while not self._server.started:
            if self._task.done():
                await self._task  # raises what stopped it
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop serving (if it started) and release the port."""
        if self._task is not None:
            self._server.should_exit = True
            await self._task
            self._task = None
        self.socket.close()

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        """Serve until the block ends; yields the endpoint."""
        try:
            await self.start()
            yield self.endpoint
        finally:
            await self.stop()


class _Quiet(uvicorn.Server):
    """uvicorn without its own signal handling: whoever runs it owns Ctrl-C."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


def main(argv: list[str] | None = None) -> int:
    """`python -m starter.codec_server [--port 8081]`: the local codec server, on loopback, with
    the keys of JOURNEYS_PAYLOAD_KEYS (or the data folder's key file)."""
    parser = argparse.ArgumentParser(
        prog="python -m starter.codec_server", description="the local codec server, on loopback"
    )
    parser.add_argument("--host", default="127.0.0.1", help="a loopback address (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8081, help="port (8081)")
    args = parser.parse_args(argv)
    settings = Settings()
    if payload_codec(settings) is None:
        print("note: no JOURNEYS_PAYLOAD_KEYS: payloads are returned as they are", file=sys.stderr)
    try:
        server = LocalCodecServer(settings, args.host, args.port)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    origins = ", ".join(sorted(ui_origins(settings)))
    print(f"codec endpoint {server.endpoint} (for the Temporal UI at {origins})", flush=True)
    config = uvicorn.Config(server.app, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[server.socket])
    return 0


if __name__ == "__main__":
    sys.exit(main())
