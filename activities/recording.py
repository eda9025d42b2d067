"""Recording what a journey did: each step it reached and how it ended, once each."""

from __future__ import annotations

from temporalio import activity

from activities.store import JourneyRun, JourneyStepRow, Store
from workflows.models import OutcomeRecord, StepRecord


class RecordingActivities:
    def __init__(self, store: Store) -> None:
        self.store = store

    @activity.defn(name="record_step")
    def record_step(self, step: StepRecord) -> None:
        """Add the step (unique per run and sequence number) and mark the run as there."""
        self.store.record_step(JourneyStepRow(**step.model_dump()))

    @activity.defn(name="record_outcome")
    def record_outcome(self, record: OutcomeRecord) -> None:
        """Write the run's outcome; a retry rewrites the same values."""
        with self.store.session() as session:
            run = session.get(JourneyRun, record.run_id)
            if run is None:
                raise LookupError(f"journey run {record.run_id} has no entry recorded")
            run.outcome = record.outcome
            run.outcome_reason = record.reason
            run.outcome_at = record.at
            run.step = record.step
            run.messages_sent = record.messages_sent
            run.goal_at = record.goal_at
            run.revenue = record.revenue
            session.add(run)
            session.commit()
