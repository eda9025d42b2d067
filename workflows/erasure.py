"""Erasure (GDPR/CCPA): one durable workflow per request erases one user everywhere we keep them.

`DELETE /v1/users/{id}`, a Segment `delete` call and `journeys erase` each record the request
(an `erasures` row) and start `EraseUser`; the API answers 202 once Temporal has it, so the
erasure finishes even if the API dies right after. The workflow only orders the work; the
activities (activities/erasure.py) do it, each one idempotent, so a retry or a worker that dies
changes when it finishes, never what it does. A pass is:

1. end the user's running journeys: the `remove` signal (outcome "exited", reason "erased"),
   then terminate any still running after a bounded wait;
2. erase the records: profile, event summaries and aliases deleted; runs, refusals, messages,
   purchases and receipts kept for the counts under a tombstone (`erased_<random>`), the
   messages' personal content (address, subject, bodies, context) cleared;
3. delete the user's workflow histories from Temporal.

Then it waits `grace` and passes again, for what was in flight when it began: an API call that
had recorded an event but not yet started its journey, a send of a journey that was terminated.
A third pass follows only if the second still found journeys to end. Last, it waits until
Temporal, which deletes asynchronously (about 30 s on the dev server), has no history of theirs
left. Until the erasure is done, anything recorded for the user is erased with the rest;
after it, the user is new to us.

The history holds the erasure ID, its counts and the (random) run IDs it deleted, never the user
ID: the activities read it from the `erasures` row, which the last step clears along with the
tombstone.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy

BEGIN = "erasure_begin"
END_JOURNEYS = "erasure_end_journeys"
ERASE_RECORDS = "erasure_erase_records"
DELETE_HISTORIES = "erasure_delete_histories"
FINISH = "erasure_finish"
"""Activity names (activities/erasure.py registers them under these)."""

DEFAULT_GRACE = timedelta(seconds=60)
"""Between passes: longer than an API call takes (a 5 s body, 3 s for Temporal) and than a send
activity may still run after its journey was terminated (30 s start-to-close)."""

MAX_PASSES = 3

DATABASE_OPTIONS: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=60),
    "retry_policy": RetryPolicy(maximum_interval=timedelta(minutes=1)),
}
"""Retried until the database is back: an accepted erasure is never dropped."""

TEMPORAL_OPTIONS: dict[str, Any] = {
    "start_to_close_timeout": timedelta(minutes=5),
    "retry_policy": RetryPolicy(maximum_interval=timedelta(minutes=1)),
}
"""Listing, signalling, waiting (bounded) and deleting: retried until Temporal has done it."""


class ErasureInput(BaseModel):
    """Starts one erasure. No user ID: the activities read it from the `erasures` row."""

    erasure_id: str
    grace: timedelta = DEFAULT_GRACE
    max_passes: int = MAX_PASSES


class JourneysEnded(BaseModel):
    """What one pass found running: ended by the `remove` signal, or terminated."""

    found: int = 0
    removed: int = 0
    terminated: int = 0


class HistoriesToDelete(BaseModel):
    """Delete the user's histories; `confirm` (once, at the end): wait until Temporal, which
    deletes asynchronously, no longer has any of them."""

    erasure_id: str
    confirm: bool = False


class HistoriesDeleted(BaseModel):
    """The runs whose deletion this pass asked for (random IDs: nothing personal), and how many
    journeys it found still running (started since the pass ended journeys) and terminated."""

    run_ids: list[str] = Field(default_factory=list)
    terminated: int = 0


class ErasureCounts(BaseModel):
    """The erasure's totals (its result, the `progress` query, and the `erasures` row)."""

    erasure_id: str
    step: str = "accepted"
    passes: int = 0
    journeys_ended: int = 0
    journeys_terminated: int = 0
    records_erased: int = 0
    histories_deleted: int = 0
    done: bool = False


@workflow.defn(name="EraseUser")
class EraseUser:
    """Ends, erases and deletes everything about one user; see the module docstring."""

    @workflow.init
    def __init__(self, input: ErasureInput) -> None:
        self._counts = ErasureCounts(erasure_id=input.erasure_id)
        self._deleted: set[str] = set()

    @workflow.query(name="progress")
    def progress(self) -> ErasureCounts:
        """Where the erasure is and what it has done so far."""
        return self._counts

    @workflow.run
    async def run(self, input: ErasureInput) -> ErasureCounts:
        counts = self._counts
        counts.step = "starting"
        begun: bool = await workflow.execute_activity(
            BEGIN, input.erasure_id, result_type=bool, **DATABASE_OPTIONS
        )
        if not begun:  # done already (a start after it finished), or no such request
            counts.step, counts.done = "done", True
            return counts
        while True:
            counts.passes += 1
            counts.step = "ending journeys"
            ended: JourneysEnded = await workflow.execute_activity(
                END_JOURNEYS, input.erasure_id, result_type=JourneysEnded, **TEMPORAL_OPTIONS
            )
            counts.journeys_ended += ended.found
            counts.journeys_terminated += ended.terminated
            await self._erase_records(input)
            deleted = await self._delete_histories(input, confirm=False)
            found = ended.found + deleted.terminated
            if counts.passes >= input.max_passes or (counts.passes > 1 and found == 0):
                break
            counts.step = "waiting for calls in flight"
            await workflow.sleep(input.grace)
        # See the deletions through; a journey that started at the very last moment is ended
        # there, and its records (written before it was) erased after.
        confirmed = await self._delete_histories(input, confirm=True)
        if confirmed.terminated:
            counts.journeys_ended += confirmed.terminated
            counts.journeys_terminated += confirmed.terminated
            await self._erase_records(input)
        counts.step, counts.done = "done", True
        await workflow.execute_activity(FINISH, counts, **DATABASE_OPTIONS)
        return counts

    async def _erase_records(self, input: ErasureInput) -> None:
        self._counts.step = "erasing records"
        self._counts.records_erased += await workflow.execute_activity(
            ERASE_RECORDS, input.erasure_id, result_type=int, **DATABASE_OPTIONS
        )

    async def _delete_histories(self, input: ErasureInput, *, confirm: bool) -> HistoriesDeleted:
        self._counts.step = "confirming deletions" if confirm else "deleting histories"
        deleted: HistoriesDeleted = await workflow.execute_activity(
            DELETE_HISTORIES,
            HistoriesToDelete(erasure_id=input.erasure_id, confirm=confirm),
            result_type=HistoriesDeleted,
            **TEMPORAL_OPTIONS,
        )
        self._deleted.update(deleted.run_ids)
        self._counts.histories_deleted = len(self._deleted)
        return deleted
