"""The segment entry workflow: one run of a journey's segment, started by its Temporal Schedule.

It walks the segment page by page (one activity per page: select with SQL, start the journeys),
so the Temporal UI shows every page with what it selected and started, and the `progress` query
and the workflow's memo show the totals so far. A crash resumes at the page it was on; a long
run continues as new before its history grows large.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TypedDict

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.segments import SegmentActivities
    from workflows.models import SegmentPageRequest, SegmentProgress, SegmentRunInput

PAGES_PER_RUN = 200
"""Pages before continuing as new: about 600 history events, far under Temporal's limits."""


class _PageOptions(TypedDict):
    start_to_close_timeout: timedelta
    retry_policy: RetryPolicy


PAGE_OPTIONS: _PageOptions = {
    "start_to_close_timeout": timedelta(minutes=10),
    "retry_policy": RetryPolicy(maximum_interval=timedelta(minutes=1)),
}


@workflow.defn(name="SegmentEntry")
class SegmentEntryWorkflow:
    """Selects a journey's segment in pages and starts each matching user's journey once."""

    @workflow.init
    def __init__(self, input: SegmentRunInput) -> None:
        as_of = input.as_of or workflow.now()
        self._progress = input.progress or SegmentProgress(journey=input.journey, as_of=as_of)

    @workflow.query(name="progress")
    def progress(self) -> SegmentProgress:
        """Pages done, users selected and started, and users already in the journey."""
        return self._progress

    @workflow.run
    async def run(self, input: SegmentRunInput) -> SegmentProgress:
        progress = self._progress
        after = input.after
        for _ in range(PAGES_PER_RUN):
            page = await workflow.execute_activity_method(
                SegmentActivities.enter_segment_page,
                SegmentPageRequest(
                    journey=input.journey, as_of=progress.as_of, after=after, limit=input.page_size
                ),
                **PAGE_OPTIONS,
            )
            progress.pages += 1
            progress.selected += page.selected
            progress.started += page.started
            progress.already_in += page.already_in
            workflow.upsert_memo({"progress": progress.model_dump(mode="json")})
            if page.next_after is None:
                progress.done = True
                return progress
            after = page.next_after
        workflow.continue_as_new(
            SegmentRunInput(
                journey=input.journey,
                as_of=progress.as_of,
                after=after,
                progress=progress,
                page_size=input.page_size,
            )
        )
