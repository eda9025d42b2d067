"""Replay: check that the current code can continue the journeys that are running.

A journey runs for weeks. When a worker with new code picks one up, Temporal replays its
history against that code, and any difference in what the code asks for (a timer where the
history has an activity, a send missing) is non-determinism: the journey is stuck until the
code is fixed. This module replays real histories, fetched from Temporal or read from files,
with the worker's own workflows, sandbox and data converter, so a deploy that would break
running journeys fails here first.

    journeys replay                          # the last 20 runs of each journey, segment runs
    journeys replay --journey cart_recovery --limit 100 --since 7d --running
    journeys replay tests/histories/*.json   # recorded histories, no server needed

See docs/deploys.md.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.service import RPCError
from temporalio.worker import Replayer

from starter.codec import PayloadDecodeError, PayloadKeyError, data_converter
from starter.settings import Settings
from worker import WORKFLOWS, workflow_runner
from workflows import registry
from workflows.models import JourneyInput

JOURNEY = "Journey"
SEGMENT_ENTRY = "SegmentEntry"
"""The summary line of segment-entry runs (a workflow type, not a journey)."""

DEFAULT_LIMIT = 20

_SINCE = re.compile(r"^(\d+)([dhm])$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_CORE_MESSAGE = re.compile(r'message: "((?:[^"\\]|\\.)*)"')
_LOCAL_ACTIVITY = re.compile(r"LocalActivity\((\d+)\)")


def replayer(converter: DataConverter = pydantic_data_converter) -> Replayer:
    """A Replayer configured as the worker is, so a replay behaves as production would.

    `converter`: the worker's, `starter.codec.data_converter(settings)`, whose codec decrypts
    payloads (and passes unencrypted ones through, so older histories replay too)."""
    return Replayer(
        workflows=list(WORKFLOWS),
        workflow_runner=workflow_runner(),
        data_converter=converter,
        runtime=_quiet_runtime(),
    )


@functools.cache
def _quiet_runtime() -> Runtime:
    """The SDK core logs each failing replay as a warning; the report says it once, clearly."""
    quiet = TelemetryFilter(core_level="ERROR", other_level="ERROR")
    return Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=quiet)))


@dataclass(frozen=True)
class ReplayFailure:
    """One history the current code cannot continue."""

    group: str
    workflow_id: str
    run_id: str
    error: str
    nondeterministic: bool

    def __str__(self) -> str:
        kind = "non-deterministic" if self.nondeterministic else "failed"
        return f"{self.workflow_id} (run {self.run_id}, {self.group}) {kind}: {self.error}"


@dataclass
class ReplayReport:
    """Histories replayed and failed, per journey (and `SegmentEntry`)."""

    replayed: dict[str, int] = field(default_factory=dict)
    failures: list[ReplayFailure] = field(default_factory=list)
    workflow_ids: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def total(self) -> int:
        return sum(self.replayed.values())

    def failed(self, group: str) -> int:
        return sum(1 for f in self.failures if f.group == group)

    def summary(self) -> str:
        """One line per journey, then one per failure: what `journeys replay` prints."""
        if not self.replayed:
            return "no histories found to replay"
        lines = [
            f"{group:24} replayed {count:4}  failed {self.failed(group)}"
            for group, count in sorted(self.replayed.items())
        ]
        lines += [f"FAILED {failure}" for failure in self.failures]
        return "\n".join(lines)


async def replay(
    histories: AsyncIterator[WorkflowHistory] | Iterable[WorkflowHistory],
    journey_modules: Sequence[str] = ("workflows.journeys",),
    converter: DataConverter = pydantic_data_converter,
) -> ReplayReport:
    """Replay `histories` against the code loaded from `journey_modules`, decoding payloads with
    `converter` (the worker's); never raises for a history that fails, it is reported instead."""
    registry.load_modules(list(journey_modules))
    report = ReplayReport()
    async with replayer(converter).workflow_replay_iterator(_aiter(histories)) as results:
        async for result in results:
            group = group_of(result.history, converter)
            report.replayed[group] = report.replayed.get(group, 0) + 1
            report.workflow_ids.append(result.history.workflow_id)
            if result.replay_failure is not None:
                report.failures.append(_failure(group, result.history, result.replay_failure))
    return report


async def replay_recent(
    client: Client,
    *,
    journeys: Sequence[str] | None = None,
    limit: int = DEFAULT_LIMIT,
    since: datetime | None = None,
    running: bool = False,
    journey_modules: Sequence[str] = ("workflows.journeys",),
) -> ReplayReport:
    """Fetch up to `limit` recent histories per journey (all loaded journeys, journeys still
    running under a name this code no longer has, and segment runs, unless `journeys` names
    some) from `client`'s namespace and replay them."""
    loaded = [j.name for j in registry.load_modules(list(journey_modules))]
    histories = _fetch(client, journeys, loaded, limit, since, running)
    return await replay(histories, journey_modules, client.data_converter)


def load_history(path: Path) -> WorkflowHistory:
    """A history file (`WorkflowHistory.to_json()` or `temporal workflow show --output json`).

    The workflow ID comes from the start event (servers since 1.28 record it), else the file
    name."""
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    started = history.events[0].workflow_execution_started_event_attributes
    if started.workflow_id:
        history = WorkflowHistory(started.workflow_id, history.events)
    return history


async def run_command(
    settings: Settings,
    files: Sequence[Path] = (),
    journeys: Sequence[str] | None = None,
    limit: int = DEFAULT_LIMIT,
    since: str | None = None,
    running: bool = False,
) -> int:
    """`journeys replay`: print the summary; 1 if any history fails, 2 on a usage error."""
    modules = settings.journey_modules
    try:
        since_at = parse_since(since) if since else None
        for name in journeys or ():
            _checked(name)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if files:
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            print(f"error: no such file: {', '.join(missing)}", file=sys.stderr)
            return 2
        histories = []
        for path in files:
            try:
                histories.append(load_history(path))
            except ValueError as err:  # an index or other JSON beside the histories
                print(f"note: skipping {path}: not a workflow history ({err})")
        try:
            converter = data_converter(settings)
        except PayloadKeyError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        report = await replay(histories, modules, converter)
        source = f"{len(histories)} files"
    else:
        from starter.client import connect

        source = f"{settings.temporal_address} (namespace {settings.temporal_namespace})"
        try:
            client = await connect(settings)
        except PayloadKeyError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except RuntimeError as err:
            print(f"error: cannot reach Temporal at {source}: {err}", file=sys.stderr)
            return 2
        loaded = {j.name for j in registry.load_modules(modules)}
        for name in set(journeys or ()) - loaded:
            print(f"note: no journey {name!r} in this code; its histories will not replay")
        try:
            report = await replay_recent(
                client, journeys=journeys, limit=limit, since=since_at, running=running,
                journey_modules=modules,
            )  # fmt: skip
        except RPCError as err:  # e.g. JourneyName unknown: no worker has run on this server
            print(f"error: Temporal at {source} refused to list journeys: {err}", file=sys.stderr)
            return 2
    print(f"replayed {report.total} histories from {source} against this code")
    print(report.summary())
    if not report.ok:
        print(
            f"error: {len(report.failures)} of {report.total} histories do not replay: running "
            "journeys would be stuck on this code. Guard the change with workflow.patched or "
            "start a new journey (docs/deploys.md).",
            file=sys.stderr,
        )
        return 1
    return 0


def group_of(history: WorkflowHistory, converter: DataConverter = pydantic_data_converter) -> str:
    """The journey a history ran (from its start input, decrypted with `converter`'s codec), or
    its workflow type."""
    started = history.events[0].workflow_execution_started_event_attributes
    kind = started.workflow_type.name
    if kind != JOURNEY:
        return kind
    try:
        payloads = list(started.input.payloads)
        decode = getattr(converter.payload_codec, "decode_sync", None)  # starter/codec.py's
        if decode is not None:
            payloads = decode(payloads)
        [input] = converter.payload_converter.from_payloads(payloads, [JourneyInput])
    except PayloadDecodeError:  # not these keys: the journey's name is in its workflow ID
        name = history.workflow_id.partition(":")[0]
        return name if _NAME.match(name) else "Journey (encrypted input)"
    except Exception:  # a history from code older than today's input model
        return "Journey (unreadable input)"
    return str(input.journey)


def parse_since(text: str) -> datetime:
    """`7d`, `12h`, `30m` ago, or an ISO date or time (UTC unless it says otherwise)."""
    match = _SINCE.match(text.strip())
    if match:
        unit = {"d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1)}
        return datetime.now(UTC) - int(match[1]) * unit[match[2]]
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since takes 7d, 12h, 30m or an ISO date, not {text!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def query_for(
    workflow_type: str,
    *,
    journey: str | None = None,
    not_journeys: Sequence[str] = (),
    since: datetime | None = None,
    running: bool = False,
) -> str:
    """The visibility query for one group of histories."""
    parts = [f"WorkflowType = '{workflow_type}'"]
    if journey is not None:
        parts.append(f"JourneyName = '{_checked(journey)}'")
    if not_journeys:
        names = ", ".join(f"'{_checked(n)}'" for n in not_journeys)
        parts.append(f"JourneyName NOT IN ({names})")
    if since is not None:
        parts.append(f"StartTime >= '{since.astimezone(UTC).isoformat().replace('+00:00', 'Z')}'")
    if running:
        parts.append("ExecutionStatus = 'Running'")
    return " AND ".join(parts)


async def _fetch(
    client: Client,
    journeys: Sequence[str] | None,
    loaded: list[str],
    limit: int,
    since: datetime | None,
    running: bool,
) -> AsyncIterator[WorkflowHistory]:
    queries = [
        query_for(JOURNEY, journey=name, since=since, running=running)
        for name in (journeys or loaded)
    ]
    if not journeys:
        # Journeys under a name this code no longer has would fail on the new workers.
        queries.append(query_for(JOURNEY, not_journeys=loaded, since=since, running=True))
        queries.append(query_for(SEGMENT_ENTRY, since=since, running=running))
    for query in queries:
        async for execution in client.list_workflows(query, limit=limit):
            handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
            yield await handle.fetch_history()


async def _aiter(
    histories: AsyncIterator[WorkflowHistory] | Iterable[WorkflowHistory],
) -> AsyncIterator[WorkflowHistory]:
    if isinstance(histories, AsyncIterator):
        async for history in histories:
            yield history
    else:
        for history in histories:
            yield history


def _failure(group: str, history: WorkflowHistory, err: Exception) -> ReplayFailure:
    # The SDK wraps core's message in a Rust debug dump; the message inside is the useful part.
    core = _CORE_MESSAGE.search(str(err))
    error = core[1] if core else f"{type(err).__name__}: {err}"
    local = _LOCAL_ACTIVITY.search(error)
    activity_type = _local_activity_type(history, int(local[1])) if local else None
    if local and activity_type:
        error += f" (the history's local activity {local[1]} is {activity_type!r})"
    known = group in registry.names() or group == SEGMENT_ENTRY
    if not known:
        error += f" (no journey {group!r} in this code: removed or renamed while it still runs?)"
    nondeterministic = isinstance(err, workflow.NondeterminismError)
    if not nondeterministic and error.endswith(_UNDECODABLE):
        # Core matches local activities by sequence number only: where the code asks for
        # another write than the history made there, the recorded result reaches the wrong call
        # and does not decode. The code takes another path than the history: non-determinism.
        nondeterministic = True
        error += (
            " (a recorded activity result does not fit what this code asks for at that point:"
            " it takes another path than the history, or a model no longer reads it)"
        )
    return ReplayFailure(
        group=group,
        workflow_id=history.workflow_id,
        run_id=history.run_id,
        error=error,
        nondeterministic=nondeterministic,
    )


_UNDECODABLE = "Failed decoding arguments"
"""The SDK's error when a recorded payload does not decode as what the code expects."""


def _local_activity_type(history: WorkflowHistory, seq: int) -> str | None:
    """The activity type of the history's local activity `seq`: core's message names only the
    number, and the marker's data says which write of the engine it was."""
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED:
            continue
        details = event.marker_recorded_event_attributes.details
        if "data" not in details or not details["data"].payloads:
            continue
        try:
            data = json.loads(details["data"].payloads[0].data)
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("seq") == seq:
            return str(data.get("activity_type"))
    return None


def _checked(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"not a journey name: {name!r}")
    return name
