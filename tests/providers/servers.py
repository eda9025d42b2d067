"""Local stand-ins that follow each provider's documented contract, on loopback."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        import json

        return json.loads(self.body)


@dataclass
class Script:
    """Answers to give, in order (the last one repeats), and the requests received."""

    answers: list[tuple[int, Any, dict[str, str]]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    delay: float = 0.0

    def then(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> Script:
        self.answers.append((status, body, headers or {}))
        return self


def contract_app(script: Script, path: str, check: Any) -> FastAPI:
    """POST `path`: `check(request, body)` returns an error response if the request breaks the
    provider's contract (missing auth, missing field); else the scripted answer."""
    app = FastAPI()

    @app.post(path)
    async def endpoint(request: Request) -> Response:
        body = await request.body()
        script.seen.append(Seen(request.url.path, dict(request.headers), body))
        if script.delay:
            await asyncio.sleep(script.delay)
        refusal = check(request, body)
        if refusal is not None:
            return refusal
        status, answer, headers = script.answers[min(len(script.seen), len(script.answers)) - 1]
        if isinstance(answer, bytes | str):
            return Response(answer, status_code=status, headers=headers)
        return JSONResponse(answer, status_code=status, headers=headers)

    return app
