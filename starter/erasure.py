"""Erasure (GDPR/CCPA) over HTTP, and the one way every caller starts an erasure.

    DELETE /v1/users/{user_id}          202: accepted; the answer names the erasure
    GET    /v1/erasures/{erasure_id}    where it is ("accepted", "running", "done") and its counts

The request is recorded (an `erasures` row) and the EraseUser workflow (workflows/erasure.py)
started before the 202, so an accepted erasure finishes whatever happens to the API after it;
the same user again while it runs gets the same erasure. A Segment `delete` call (in a batch,
or from the Segment source) and `journeys erase` go through `request_erasure` too.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, OperationalError
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from activities.erasure import open_erasure, read_erasure
from activities.store import ErasureRow, Store
from workflows.erasure import EraseUser, ErasureInput

router = APIRouter(tags=["erasure"])

RETRY_AFTER = "5"


class ErasureUnavailable(Exception):
    """The database or Temporal could not take the request: nothing was accepted, retry."""


def erasure_workflow_id(erasure_id: str) -> str:
    return f"erasure:{erasure_id}"


async def request_erasure(
    store: Store, client: Client, task_queue: str, user_id: str, source: str
) -> ErasureRow:
    """Record the erasure of `user_id` (or find the one in progress) and make sure its workflow
    runs; ErasureUnavailable if either part could not be done now (a retry is safe)."""
    try:
        row = await asyncio.to_thread(open_erasure, store, user_id, source)
    except (OperationalError, DBAPIError) as err:
        raise ErasureUnavailable("database") from err
    try:
        await client.start_workflow(
            EraseUser.run,
            ErasureInput(erasure_id=row.erasure_id),
            id=erasure_workflow_id(row.erasure_id),
            task_queue=task_queue,
            # A retried request joins the running workflow; one an operator terminated or that
            # failed starts again, as the row is still open.
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        )
    except WorkflowAlreadyStartedError:
        pass  # it ran to its end already
    except RPCError as err:
        raise ErasureUnavailable("Temporal") from err
    return row


class Erasure(BaseModel):
    """An erasure request and how far it got."""

    erasureId: str
    status: Literal["accepted", "running", "done"]
    statusUrl: str
    requestedAt: datetime
    startedAt: datetime | None = None
    finishedAt: datetime | None = None
    passes: int = 0
    journeysEnded: int = 0
    recordsErased: int = 0
    historiesDeleted: int = 0


class ErasureProblem(BaseModel):
    detail: str
    errors: list[dict[str, str]] = []


_RETRY = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}}
_UNAUTHORIZED = {"model": ErasureProblem, "description": "missing or wrong API key"}
_INVALID = {"model": ErasureProblem, "description": "a path parameter is not valid"}
_UNAVAILABLE = {
    "model": ErasureProblem,
    "description": "the database or Temporal unreachable; nothing was accepted, retry",
    "headers": _RETRY,
}
DELETE_ANSWERS: dict[int | str, dict[str, Any]] = {
    401: _UNAUTHORIZED,
    422: _INVALID,
    503: _UNAVAILABLE,
}
STATUS_ANSWERS: dict[int | str, dict[str, Any]] = {
    401: _UNAUTHORIZED,
    404: {"model": ErasureProblem, "description": "no such erasure"},
    422: _INVALID,
    503: _UNAVAILABLE,
}

UserId = Annotated[str, Path(min_length=1, max_length=255)]
ErasureId = Annotated[str, Path(min_length=1, max_length=64)]


@router.delete(
    "/v1/users/{user_id}", status_code=202, response_model=Erasure, responses=DELETE_ANSWERS
)
async def erase_user(user_id: UserId, request: Request, response: Response) -> Any:
    """Erase the user (GDPR/CCPA): end their journeys, erase their profile, events, aliases and
    the personal content of their messages, keep anonymous counts, delete their workflow
    histories. 202 once the erasure is recorded and its workflow started: it finishes even if
    this API stops. The same user again while it runs answers the same erasure."""
    if "\x00" in user_id:  # PostgreSQL cannot store one; no real user ID has one
        error = {"loc": ("path", "user_id"), "msg": "a NUL character is not allowed"}
        raise RequestValidationError([{**error, "type": "value_error"}])
    state = request.app.state
    try:
        row = await request_erasure(
            state.store, state.client, state.settings.task_queue, user_id, "api"
        )
    except ErasureUnavailable as err:
        return _unavailable(str(err))
    answer = _answer(row)
    response.headers["Location"] = answer.statusUrl
    return answer


@router.get("/v1/erasures/{erasure_id}", response_model=Erasure, responses=STATUS_ANSWERS)
async def erasure_status(erasure_id: ErasureId, request: Request) -> Any:
    """Where an erasure is ("accepted", "running", "done") and, once done, what it did."""
    try:
        row = await asyncio.to_thread(read_erasure, request.app.state.store, erasure_id)
    except (OperationalError, DBAPIError):
        return _unavailable("database")
    if row is None:
        raise HTTPException(404, "no such erasure")
    return _answer(row)


def _answer(row: ErasureRow) -> Erasure:
    return Erasure(
        erasureId=row.erasure_id,
        status=row.status,
        statusUrl=f"/v1/erasures/{row.erasure_id}",
        requestedAt=row.requested_at,
        startedAt=row.started_at,
        finishedAt=row.finished_at,
        passes=row.passes,
        journeysEnded=row.journeys_ended,
        recordsErased=row.records_erased,
        historiesDeleted=row.histories_deleted,
    )


def _unavailable(what: str) -> JSONResponse:
    return JSONResponse(
        {"detail": f"temporarily unavailable: {what}; nothing was accepted, retry"},
        status_code=503,
        headers={"Retry-After": RETRY_AFTER},
    )
