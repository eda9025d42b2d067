"""405 answers that name every method a path takes.

Starlette answers a method that no route of a path takes with 405 and the methods of the first
route it matched only (GET, for a path that also takes PUT); clients, and the fuzzer in
tests/security, read `Allow`. Register this after a path's real routes.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter
from fastapi.responses import JSONResponse

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def refuse_other_methods(router: APIRouter, path: str, allowed: Sequence[str]) -> None:
    """Answer every method but `allowed` on `path` with 405 and `Allow: <allowed>`."""
    allow = ", ".join(allowed)

    async def other_methods() -> JSONResponse:
        return JSONResponse(
            {"detail": "Method Not Allowed"}, status_code=405, headers={"Allow": allow}
        )

    others = [method for method in METHODS if method not in allowed]
    router.add_api_route(path, other_methods, methods=others, include_in_schema=False)
