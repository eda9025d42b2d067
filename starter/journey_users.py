"""Who is in a journey, a user's story, and taking users out: the operators' calls.

    GET    /v1/journeys/{journey}/users?step=&group=&limit=&cursor=   running journeys, a page
    DELETE /v1/journeys/{journey}/users/{user_id}          end that user's journey now
    DELETE /v1/journeys/{journey}/users?all=true&step=&group=   the same for every user matching
    GET    /v1/users/{user_id}/journeys                     the user's story (starter/explain.py)

Who is in a journey comes from Temporal visibility, through the search attributes every journey
workflow carries (workflows/identity.py): JourneyName, JourneyUserId (the user key, never an
address), JourneyStep and JourneyGroup; our database is not scanned. Visibility is eventually
consistent: a journey started a moment ago may not be listed yet, one just removed may still be.

Removing is the engine's `remove` signal with a `Removal`: the run records outcome "exited",
reason "removed", and completes (a journey still qualifying closes without entry). Bulk removal
must say `all=true` (`--all`), filters or not, so nobody removes everyone by accident.
`journeys users`, `journeys remove` and `journeys explain` call the same functions.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import re
import shlex
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from starter.explain import (
    HASHED_KEY,
    RunningJourney,
    UserStory,
    render_text,
    story_key,
    user_story,
    workflow_link,
)
from starter.methods import refuse_other_methods
from starter.settings import Settings
from workflows.identity import (
    JOURNEY_GROUP,
    JOURNEY_NAME,
    JOURNEY_STEP,
    JOURNEY_USER_ID,
    user_key,
    workflow_id,
)
from workflows.models import Group, Removal

router = APIRouter()

OVER = frozenset({"done", "cooldown"})
"""Steps of a workflow still running whose outcome is recorded: closing, or (journeys started
before close-at-outcome) guarding the re-entry window. Its user is no longer in the journey."""

TEXT = r'^[^"\\\x00-\x1f\x7f]*$'
"""What a step filter may hold: it is quoted into a visibility query, where `'` is escaped by
doubling but a backslash or double quote does not match reliably."""

PAGE = 100
"""Workflows listed, and signalled concurrently, per page of a bulk removal."""

REMOVE_WAIT = 5.0
"""Seconds a single removal waits to see the run close, so its answer can say COMPLETED."""

RETRY_AFTER = "5"

DEFAULT_LIMIT = 50
"""Users per page unless asked."""
MAX_LIMIT = 1000


class BadCursor(ValueError):
    """A cursor that is not one this API handed out."""


class JourneyUser(BaseModel):
    """One user in the journey now: their key (never an address), step, group, and the link."""

    userKey: str
    step: str | None
    group: Group | None
    """None while the user is still qualifying (not entered yet)."""
    startedAt: datetime
    workflowId: str
    runId: str
    temporalUrl: str


class UsersPage(BaseModel):
    """One page of the users in a journey, newest first."""

    journey: str
    users: list[JourneyUser]
    nextCursor: str | None
    """Pass as `cursor` for the next page; null on the last one."""


class Removed(BaseModel):
    """A user taken out of a journey."""

    journey: str
    userKey: str
    workflowId: str
    runId: str
    reason: str
    status: str
    """The run's Temporal status once answered: COMPLETED, or RUNNING if no worker has taken
    the signal within a few seconds (it ends when one does)."""


class BulkRemoved(BaseModel):
    """Users taken out of a journey by filter."""

    journey: str
    removed: int
    workflowIds: list[str]
    more: bool
    """Users matching remain past `limit`: call again."""


# Temporal --------------------------------------------------------------------------------------


def users_query(journey: str, step: str | None = None, group: str | None = None) -> str:
    """The visibility query for the journey's running workflows, filtered by step and group."""
    parts = [
        "WorkflowType = 'Journey'",
        "ExecutionStatus = 'Running'",
        f"{JOURNEY_NAME.name} = {_literal(journey)}",
    ]
    if step is not None:
        parts.append(f"{JOURNEY_STEP.name} = {_literal(step)}")
    if group is not None:
        parts.append(f"{JOURNEY_GROUP.name} = {_literal(group)}")
    return " AND ".join(parts)


def encode_cursor(token: bytes) -> str:
    """Temporal's next_page_token, base64url without padding."""
    return base64.urlsafe_b64encode(token).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> bytes:
    """The page token in `cursor`; BadCursor unless it is one Temporal could have made (JSON).

    Checked here because the server answers a garbled token with an "unknown" error that the
    SDK retries for seconds."""
    try:
        token = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        if not isinstance(json.loads(token), dict):
            raise BadCursor(cursor)
    except (binascii.Error, ValueError) as err:  # UnicodeError and JSONDecodeError are these
        raise BadCursor(cursor) from err
    return token


async def list_users(
    client: Client,
    settings: Settings,
    journey: str,
    *,
    step: str | None = None,
    group: str | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: bytes | None = None,
) -> UsersPage:
    """One page of the users in `journey` now, from visibility (at most `limit`)."""
    pages = client.list_workflows(
        users_query(journey, step, group), page_size=limit, next_page_token=cursor
    )
    await pages.fetch_next_page()
    users = [_user(settings, wf) for wf in pages.current_page or ()]
    token = pages.next_page_token
    return UsersPage(
        journey=journey, users=users, nextCursor=encode_cursor(token) if token else None
    )


async def running_of(client: Client, settings: Settings, user_id: str) -> list[RunningJourney]:
    """The user's journeys running now, entered or still qualifying, by their user key."""
    keys = sorted({user_key(user_id), story_key(user_id)})
    query = (
        "WorkflowType = 'Journey' AND ExecutionStatus = 'Running' AND "
        f"{JOURNEY_USER_ID.name} IN ({', '.join(_literal(k) for k in keys)})"
    )
    running = []
    async for wf in client.list_workflows(query, page_size=100):
        attributes = wf.typed_search_attributes
        running.append(
            RunningJourney(
                journey=attributes.get(JOURNEY_NAME) or wf.id.partition(":")[0],
                step=attributes.get(JOURNEY_STEP),
                group=_group(attributes.get(JOURNEY_GROUP)),
                startedAt=wf.start_time,
                workflowId=wf.id,
                runId=wf.run_id,
                temporalUrl=workflow_link(settings, wf.id, wf.run_id),
            )
        )
    return running


async def remove_user(
    client: Client,
    journey: str,
    user_id: str,
    *,
    reason: str = "removed",
    wait: float = REMOVE_WAIT,
) -> Removed | None:
    """Signal `remove` to the user's running journey and wait up to `wait` s for it to close.

    `user_id` is the user ID, or the user key the listing shows. None if the user is not in the
    journey: no workflow running, or one whose outcome is already recorded (`OVER`)."""
    for candidate in _workflow_ids(journey, user_id):
        for _ in range(3):  # again if the run closed between describe and signal (continued)
            try:
                described = await client.get_workflow_handle(candidate).describe()
                if (
                    described.status != WorkflowExecutionStatus.RUNNING
                    or described.typed_search_attributes.get(JOURNEY_STEP) in OVER
                ):
                    break
                await client.get_workflow_handle(candidate, run_id=described.run_id).signal(
                    "remove", Removal(reason=reason)
                )
            except RPCError as err:
                if err.status == RPCStatusCode.NOT_FOUND:
                    continue
                raise
            status = await _status_after(client, candidate, described.run_id, wait)
            return Removed(
                journey=journey,
                userKey=candidate.partition(":")[2],
                workflowId=candidate,
                runId=described.run_id,
                reason=reason,
                status=status.name,
            )
    return None


async def remove_matching(
    client: Client,
    journey: str,
    *,
    step: str | None = None,
    group: str | None = None,
    limit: int | None = None,
    reason: str = "removed",
) -> BulkRemoved:
    """Signal `remove` to every running journey matching, a page at a time (at most `limit`
    workflows listed; None: all). Each listed run is signalled by its run ID, so a user who
    re-entered since is not touched."""
    query = users_query(journey, step, group)
    removed: list[str] = []
    token: bytes | None = None
    listed = 0
    while True:
        size = PAGE if limit is None else min(PAGE, limit - listed)
        pages = client.list_workflows(query, page_size=size, next_page_token=token)
        await pages.fetch_next_page()
        found = list(pages.current_page or ())
        listed += len(found)
        targets = [wf for wf in found if wf.typed_search_attributes.get(JOURNEY_STEP) not in OVER]
        signalled = await asyncio.gather(*(_signal(client, wf, reason) for wf in targets))
        removed += [wf.id for wf, done in zip(targets, signalled, strict=True) if done]
        token = pages.next_page_token
        if token is None or not found:
            return BulkRemoved(
                journey=journey, removed=len(removed), workflowIds=removed, more=False
            )
        if limit is not None and listed >= limit:
            return BulkRemoved(
                journey=journey, removed=len(removed), workflowIds=removed, more=True
            )


def _workflow_ids(journey: str, user_id: str) -> list[str]:
    """The user's workflow ID in `journey`; for a hashed key, also the ID that key makes."""
    ids = [workflow_id(journey, user_id)]
    if HASHED_KEY.fullmatch(user_id):
        ids.append(f"{journey}:{user_id}")
    return ids


async def _signal(client: Client, wf: WorkflowExecution, reason: str) -> bool:
    """Whether the listed run, or the run it continued as, took the signal (False: the journey
    has ended since it was listed)."""
    try:
        await client.get_workflow_handle(wf.id, run_id=wf.run_id).signal(
            "remove", Removal(reason=reason)
        )
        return True
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
    chain = wf.raw_info.first_run_id
    try:  # a long journey continues as new: the same chain (first run), a later run
        now = await client.get_workflow_handle(wf.id).describe()
        if (
            not chain
            or now.status != WorkflowExecutionStatus.RUNNING
            or now.raw_description.workflow_execution_info.first_run_id != chain
            or now.typed_search_attributes.get(JOURNEY_STEP) in OVER
        ):
            return False
        await client.get_workflow_handle(wf.id, run_id=now.run_id).signal(
            "remove", Removal(reason=reason)
        )
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def _status_after(
    client: Client, workflow: str, run_id: str, wait: float
) -> WorkflowExecutionStatus:
    """The run's status once it is no longer running, or after `wait` seconds."""
    handle = client.get_workflow_handle(workflow, run_id=run_id)
    deadline = asyncio.get_running_loop().time() + wait
    pause = 0.02
    while True:
        status = (await handle.describe()).status or WorkflowExecutionStatus.RUNNING
        if status != WorkflowExecutionStatus.RUNNING:
            return status
        if asyncio.get_running_loop().time() + pause > deadline:
            return status
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.5)


def _user(settings: Settings, wf: WorkflowExecution) -> JourneyUser:
    attributes = wf.typed_search_attributes
    return JourneyUser(
        userKey=attributes.get(JOURNEY_USER_ID) or wf.id.partition(":")[2],
        step=attributes.get(JOURNEY_STEP),
        group=_group(attributes.get(JOURNEY_GROUP)),
        startedAt=wf.start_time,
        workflowId=wf.id,
        runId=wf.run_id,
        temporalUrl=workflow_link(settings, wf.id, wf.run_id),
    )


def _group(value: str | None) -> Group | None:
    if value == "treatment":
        return "treatment"
    if value == "holdout":
        return "holdout"
    return None


def _literal(value: str) -> str:
    """`value` as a visibility query string literal (TEXT was checked at the edge)."""
    if not re.fullmatch(TEXT, value):
        raise ValueError(f"not allowed in a visibility query: {value!r}")
    return "'" + value.replace("'", "''") + "'"


# HTTP -----------------------------------------------------------------------------------------

_PROBLEM = {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
"""The API's error body (`starter.api.Problem`, which imports this module)."""


def _error(description: str, **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": _PROBLEM, **extra}


_RETRY = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}}
_UNAUTHORIZED = _error("missing or wrong API key")
_UNAVAILABLE = _error("Temporal unreachable; retry", headers=_RETRY)
_INVALID = _error("a parameter is not valid; `errors` names it")
_UNKNOWN_JOURNEY = _error("no journey of that name is loaded")
LIST_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("`cursor` is not one this API handed out"),
    401: _UNAUTHORIZED, 404: _UNKNOWN_JOURNEY, 422: _INVALID, 503: _UNAVAILABLE,
}  # fmt: skip
REMOVE_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _UNAUTHORIZED,
    404: _error("no journey of that name is loaded, or the user is not in it"),
    422: _INVALID,
    503: _UNAVAILABLE,
}
BULK_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _UNAUTHORIZED, 404: _UNKNOWN_JOURNEY, 422: _INVALID, 503: _UNAVAILABLE,
}  # fmt: skip
STORY_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _UNAUTHORIZED, 422: _INVALID,
    503: _error("the database unreachable; retry", headers=_RETRY),
}  # fmt: skip

JourneyName = Annotated[str, Path(description="a loaded journey's name")]
UserId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=255,
        description="the user ID, or the user key the listing shows (`h_…` for an ID that is "
        "not a plain identifier)",
    ),
]
Step = Annotated[
    str | None,
    Query(max_length=255, pattern=TEXT, description="only users at this step (JourneyStep)"),
]
GroupFilter = Annotated[Group | None, Query(description="only users in this group")]


@router.get("/v1/journeys/{journey}/users", responses=LIST_ERRORS)
async def journey_users(
    request: Request,
    journey: JourneyName,
    step: Step = None,
    group: GroupFilter = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="users per page")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, Query(max_length=4096, description="`nextCursor` of the page before")
    ] = None,
) -> UsersPage:
    """The users in a journey now (running workflows), newest first, from Temporal visibility:
    key, step, group, start, workflow and its Temporal UI link. Visibility lags by a moment."""
    _known(request, journey)
    try:
        token = decode_cursor(cursor) if cursor else None
    except BadCursor:
        raise HTTPException(400, "cursor is not one this API handed out") from None
    state = request.app.state
    try:
        return await list_users(
            state.client, state.settings, journey,
            step=step or None, group=group, limit=limit, cursor=token,
        )  # fmt: skip
    except RPCError as err:
        if err.status == RPCStatusCode.INVALID_ARGUMENT:
            raise HTTPException(400, "cursor is not one this API handed out") from None
        raise _unavailable(err) from None


@router.delete("/v1/journeys/{journey}/users/{user_id}", responses=REMOVE_ERRORS)
async def remove_journey_user(request: Request, journey: JourneyName, user_id: UserId) -> Removed:
    """End the user's journey now: outcome "exited", reason "removed"; 404 if not in it."""
    _known(request, journey)
    try:
        removed = await remove_user(request.app.state.client, journey, user_id)
    except RPCError as err:
        raise _unavailable(err) from None
    if removed is None:
        raise HTTPException(404, f"user {user_id!r} is not in journey {journey!r}")
    return removed


@router.delete("/v1/journeys/{journey}/users", responses=BULK_ERRORS)
async def remove_journey_users(
    request: Request,
    journey: JourneyName,
    all_: Annotated[
        Literal["true"],
        Query(alias="all", description="required: every user matching is to be removed"),
    ],
    step: Step = None,
    group: GroupFilter = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="most users per call")] = 1000,
) -> BulkRemoved:
    """End the journey now for every user in it at `step` and in `group` (both optional),
    up to `limit` per call (`more`: call again). `all=true` is required, filters or not."""
    _known(request, journey)
    try:
        return await remove_matching(
            request.app.state.client, journey, step=step or None, group=group, limit=limit
        )
    except RPCError as err:
        raise _unavailable(err) from None


@router.get("/v1/users/{user_id}/journeys", responses=STORY_ERRORS)
async def user_journeys(request: Request, user_id: UserId) -> UserStory:
    """Every journey the user entered or was refused: each step, send and skip with its reason,
    the group, the outcome and why, with Temporal UI links; and the ones running now."""
    state = request.app.state
    names = [journey.name for journey in state.router.journeys]
    try:
        story = await asyncio.to_thread(user_story, state.store, state.settings, user_id, names)
    except SQLAlchemyError as err:
        raise HTTPException(
            503, f"the database is unreachable ({type(err).__name__}); retry",
            headers={"Retry-After": RETRY_AFTER},
        ) from err  # fmt: skip
    try:
        story.running = await running_of(state.client, state.settings, user_id)
    except RPCError as err:
        story.runningError = f"Temporal is unreachable ({err.status.name if err.status else err})"
    return story


def _known(request: Request, journey: str) -> None:
    names: Sequence[str] = [j.name for j in request.app.state.router.journeys]
    if journey not in names:
        known = ", ".join(sorted(names)) or "none"
        raise HTTPException(404, f"unknown journey {journey!r} (loaded: {known})")


def _unavailable(err: RPCError) -> HTTPException:
    return HTTPException(
        503,
        f"Temporal is unreachable ({err.status.name if err.status else 'error'}); retry",
        headers={"Retry-After": RETRY_AFTER},
    )


# `journeys users`, `journeys remove`, `journeys explain` -------------------------------------


async def command(settings: Settings, args: argparse.Namespace) -> int:
    """Run one of the three commands against TEMPORAL_ADDRESS (and, for explain, the
    database); 0 done, 1 not found or unreachable, 2 a usage error or unknown journey."""
    from starter.client import connect
    from workflows import registry

    names = [journey.name for journey in registry.load_modules(settings.journey_modules)]
    if args.command == "explain":
        return await _explain(settings, args.user, names, as_json=args.json)
    if args.journey not in names:
        known = ", ".join(sorted(names)) or "none"
        print(f"error: unknown journey {args.journey!r} (loaded: {known})", file=sys.stderr)
        return 2
    if args.command == "users" and not 1 <= args.limit <= MAX_LIMIT:
        print(f"error: --limit must be 1 to {MAX_LIMIT}", file=sys.stderr)
        return 2
    if args.step is not None and not re.fullmatch(TEXT, args.step):
        print("error: --step cannot hold a backslash or a double quote", file=sys.stderr)
        return 2
    if args.command == "remove":
        problem = _bulk_problem(args)
        if problem is not None:
            print(f"error: {problem}", file=sys.stderr)
            return 2
    try:
        cursor = decode_cursor(args.cursor) if getattr(args, "cursor", None) else None
    except BadCursor:
        print("error: --cursor is not one `journeys users` printed", file=sys.stderr)
        return 2
    try:
        return await _against_temporal(settings, args, await connect(settings), cursor)
    except (RPCError, RuntimeError) as err:  # RuntimeError: the client could not connect
        print(f"error: Temporal at {settings.temporal_address}: {err}", file=sys.stderr)
        return 1


async def _against_temporal(
    settings: Settings, args: argparse.Namespace, client: Client, cursor: bytes | None
) -> int:
    if args.command == "users":
        page = await list_users(
            client, settings, args.journey,
            step=args.step, group=args.group, limit=args.limit, cursor=cursor,
        )  # fmt: skip
        print(page.model_dump_json(indent=2) if args.json else render_users(page, args), end="")
        return 0
    if args.user is not None:
        removed = await remove_user(client, args.journey, args.user)
        if removed is None:
            print(f"error: user {args.user!r} is not in journey {args.journey!r}", file=sys.stderr)
            return 1
        print(
            f"removed {removed.userKey} from {removed.journey} (exited, {removed.reason}); "
            f"workflow {removed.status.lower()}: "
            + workflow_link(settings, removed.workflowId, removed.runId)
        )
        return 0
    bulk = await remove_matching(client, args.journey, step=args.step, group=args.group)
    print(f"removed {bulk.removed} users from {bulk.journey}{_filters(args)} (exited, removed)")
    return 0


def _bulk_problem(args: argparse.Namespace) -> str | None:
    """Why `journeys remove` as given is ambiguous: one user, or --all (with filters)."""
    if args.user is not None and (args.all or args.step or args.group):
        return "give a user, or --all with --step/--group, not both"
    if args.user is None and not args.all:
        return (
            "give the user to remove, or --all to remove every user in the journey "
            "(narrowed by --step and --group)"
        )
    return None


def render_users(page: UsersPage, args: argparse.Namespace) -> str:
    """The page as a table, and how to ask for the next one."""
    where = _filters(args)
    if not page.users:
        return f"no users in {page.journey}{where} now (a start takes a moment to be listed)\n"
    rows = [("USER KEY", "STEP", "GROUP", "STARTED", "WORKFLOW")]
    rows += [
        (
            user.userKey,
            user.step or "-",
            user.group or "qualifying",
            user.startedAt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            user.temporalUrl,
        )
        for user in page.users
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[4]])
        for row in rows
    ]
    lines.insert(0, f"{page.journey}{where}: {len(page.users)} users on this page")
    if page.nextCursor:
        again = ["journeys", "users", page.journey, "--cursor", page.nextCursor]
        for flag, value in (("--step", args.step), ("--group", args.group)):
            again += [flag, value] if value else []
        if args.limit != DEFAULT_LIMIT:
            again += ["--limit", str(args.limit)]
        lines.append(f"next page: {shlex.join(again)}")
    return "\n".join(lines) + "\n"


def _filters(args: argparse.Namespace) -> str:
    given = [
        f"{name} {value!r}" for name, value in (("step", args.step), ("group", args.group)) if value
    ]
    return f" ({', '.join(given)})" if given else ""


async def _explain(settings: Settings, user_id: str, names: list[str], *, as_json: bool) -> int:
    from activities.store import Store

    store = Store(settings.database_url)
    try:
        story = await asyncio.to_thread(user_story, store, settings, user_id, names)
    except SQLAlchemyError as err:
        where = store.engine.url.render_as_string(hide_password=True)
        print(f"journeys explain: cannot read {where} ({type(err).__name__})", file=sys.stderr)
        return 1
    finally:
        store.dispose()
    from starter.client import connect

    try:
        client = await connect(settings)
        story.running = await running_of(client, settings, user_id)
    except Exception as err:  # the database's story stands without Temporal
        story.runningError = f"Temporal is unreachable ({type(err).__name__})"
    print(story.model_dump_json(indent=2) if as_json else render_text(story), end="")
    return 0


refuse_other_methods(router, "/v1/journeys/{journey}/users", ("GET", "DELETE"))
