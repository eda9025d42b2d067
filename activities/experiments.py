"""A/B/n experiments: assign a run its variant, and decide a winner when the test says so.

The assignment is a local activity (one short transaction, like the engine's other records):
the variant is the user's hash (workflows/experiments.py) unless the experiment has a recorded
winner, and it is written once per run and experiment, with a step row, so a retry or a replay
returns the same answer. Deciding reads the closed treatment entries assigned by hash (never
those that got the winner: they were not randomised) and applies the sequential test of
activities/sequential.py; a worker asks again at most once an hour per experiment.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.exc import IntegrityError
from temporalio import activity

from activities.sequential import Arm, decide
from activities.store import (
    ExperimentAssignment,
    ExperimentDecision,
    JourneyRun,
    JourneyStepRow,
    Store,
)
from workflows.experiments import Experiment
from workflows.models import Assignment, AssignRequest

log = logging.getLogger(__name__)

RECHECK_SECONDS = 3600.0
"""How often one worker evaluates an undecided experiment (the test is valid at any cadence)."""

LEFT_OUT = ("suppressed", "failed")


class ExperimentActivities:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._checked: dict[tuple[str, str], float] = {}

    @activity.defn(name="assign_variant")
    def assign_variant(self, request: AssignRequest) -> Assignment:
        """The run's variant: recorded once (with a step row), the winner once there is one."""
        key = (request.run_id, request.experiment)
        with self.store.session() as session:
            found = session.get(ExperimentAssignment, key)
            if found is not None:
                return Assignment(variant=found.variant, reason=_reason(found.reason))
        decision = self.decision(request)
        if decision is not None and decision.winner in request.weights:
            variant, reason = decision.winner, "winner"
        else:
            experiment = Experiment(request.experiment, request.weights)
            variant, reason = experiment.assign(request.journey, request.user_id), "assigned"
        try:
            with self.store.session() as session:
                session.add(
                    ExperimentAssignment(
                        run_id=request.run_id,
                        experiment=request.experiment,
                        journey=request.journey,
                        user_id=request.user_id,
                        variant=variant,
                        group=request.group,
                        reason=reason,
                        assigned_at=request.at,
                    )
                )
                session.add(
                    JourneyStepRow(
                        run_id=request.run_id,
                        seq=request.seq,
                        kind="variant",
                        name=request.experiment,
                        status=reason,
                        at=request.at,
                        detail=variant,
                    )
                )
                session.commit()
        except IntegrityError:  # a retry of an attempt that committed: its answer stands
            with self.store.session() as session:
                found = session.get(ExperimentAssignment, key)
                if found is None:
                    raise
                return Assignment(variant=found.variant, reason=_reason(found.reason))
        return Assignment(variant=variant, reason=reason)

    def decision(self, request: AssignRequest) -> ExperimentDecision | None:
        """The recorded winner; for an auto-winner experiment, decided now if the test says so
        (at most hourly per worker and experiment)."""
        with self.store.session() as session:
            found = session.get(ExperimentDecision, (request.journey, request.experiment))
            if found is not None or not request.auto_winner:
                return found
        checked = self._checked.get((request.journey, request.experiment))
        if checked is not None and time.monotonic() - checked < RECHECK_SECONDS:
            return None
        self._checked[(request.journey, request.experiment)] = time.monotonic()
        arms = self.arms(request.journey, request.experiment, list(request.weights))
        decided = decide(
            arms, alpha=request.alpha, min_entries=request.min_entries, effect=request.effect
        )
        if decided is None:
            return None
        figures: dict[str, Any] = {
            "arms": [
                {"variant": a.variant, "entries": a.entries, "conversions": a.conversions}
                for a in arms
            ],
            "threshold": decided.threshold,
            "effect": request.effect,
            "min_entries": request.min_entries,
        }
        row = ExperimentDecision(
            journey=request.journey,
            experiment=request.experiment,
            winner=decided.winner,
            decided_at=datetime.now(UTC),
            p_value=decided.p_value,
            alpha=request.alpha,
            figures=figures,
        )
        try:
            with self.store.session() as session:
                session.add(row)
                session.commit()
                session.refresh(row)
        except IntegrityError:  # another worker decided first: theirs stands
            with self.store.session() as session:
                return session.get(ExperimentDecision, (request.journey, request.experiment))
        log.info(
            "experiment %s.%s decided: %s (p %.4f < %.4f)",
            request.journey,
            request.experiment,
            decided.winner,
            decided.p_value,
            decided.threshold,
        )
        return row

    def arms(self, journey: str, experiment: str, variants: list[str]) -> list[Arm]:
        """Closed treatment entries assigned by hash, and their conversions, per variant."""
        a = ExperimentAssignment.__table__  # type: ignore[attr-defined]
        r = JourneyRun.__table__  # type: ignore[attr-defined]
        converted = func.sum(case((r.c.outcome == "converted", 1), else_=0))
        query = (
            select(a.c.variant, func.count(), converted)
            .select_from(a.join(r, r.c.run_id == a.c.run_id))
            .where(
                and_(
                    a.c.journey == journey,
                    a.c.experiment == experiment,
                    a.c.group == "treatment",
                    a.c.reason == "assigned",
                    r.c.outcome.is_not(None),
                    r.c.outcome.not_in(LEFT_OUT),
                )
            )
            .group_by(a.c.variant)
        )
        with self.store.engine.connect() as conn:
            counts = {row[0]: (int(row[1]), int(row[2] or 0)) for row in conn.execute(query)}
        return [Arm(v, *counts.get(v, (0, 0))) for v in variants]


def _reason(value: str) -> Any:
    return "winner" if value == "winner" else "assigned"
