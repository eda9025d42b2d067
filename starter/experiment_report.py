"""Each A/B/n experiment's figures per variant, for `journeys report` and the dashboard.

A variant is measured twice: against the journey's holdout (does this copy work at all?) and
against the experiment's baseline, its first variant (does it work better?). Rates count the
treatment entries assigned that variant (suppressed and failed ones aside, as in the journey's
report); intervals are the report's 95 % normal intervals. `always_valid_p` is the sequential
test's p-value against the baseline on closed entries assigned by hash, the one the automatic
winner is decided on, which (unlike the interval) may be read every day.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy import Table, and_, case, distinct, func, or_, select

from activities.experiments import ExperimentActivities
from activities.sequential import always_valid_p
from activities.store import (
    ExperimentAssignment,
    ExperimentDecision,
    JourneyRun,
    OutboxMessage,
    Store,
)
from starter import stats
from workflows.journey import Journey

ASSIGNMENTS: Table = ExperimentAssignment.__table__  # type: ignore[attr-defined]
RUNS: Table = JourneyRun.__table__  # type: ignore[attr-defined]
OUTBOX: Table = OutboxMessage.__table__  # type: ignore[attr-defined]
DECISIONS: Table = ExperimentDecision.__table__  # type: ignore[attr-defined]
LEFT_OUT = ("suppressed", "failed")


class Interval(BaseModel):
    """A 95 % interval (the report's, and each variant's)."""

    low: float
    high: float


class VariantResult(BaseModel):
    variant: str
    share: float | None = None
    """Its declared weight over the total (None: the journey is no longer loaded)."""
    entries: int = 0
    """Treatment entries assigned this variant (by hash or as the winner)."""
    sent: int = 0
    """Messages sent as this variant."""
    converted: int = 0
    rate: float | None = None
    revenue_per_entry: float | None = None
    lift_vs_holdout: float | None = None
    lift_vs_holdout_ci: Interval | None = None
    lift_vs_baseline: float | None = None
    lift_vs_baseline_ci: Interval | None = None
    always_valid_p: float | None = None
    """Against the baseline, on closed entries assigned by hash (None for the baseline)."""


class Decision(BaseModel):
    winner: str
    decided_at: datetime
    p_value: float
    alpha: float
    figures: dict[str, object]


class ExperimentResult(BaseModel):
    experiment: str
    baseline: str
    auto_winner: bool = False
    alpha: float | None = None
    variants: list[VariantResult] = []
    decision: Decision | None = None
    """The automatic winner, when and on what figures it was decided."""


def experiment_results(
    store: Store,
    journey: str,
    cls: type[Journey] | None,
    since: datetime | None,
    holdout_entries: int,
    holdout_converted: int,
) -> list[ExperimentResult]:
    """Every experiment of `journey` that is declared or has assignments, in declared order."""
    a, r, o = ASSIGNMENTS.c, RUNS.c, OUTBOX.c
    where = [a.journey == journey, a.group == "treatment"]
    if since is not None:
        where.append(r.entered_at >= since)
    counted = or_(r.outcome.is_(None), r.outcome.not_in(LEFT_OUT))
    converted = r.outcome == "converted"
    per_variant = (
        select(
            a.experiment,
            a.variant,
            func.count(),
            func.sum(case((converted, 1), else_=0)),
            func.coalesce(func.sum(case((converted, r.revenue), else_=0.0)), 0.0),
        )
        .select_from(ASSIGNMENTS.join(RUNS, r.run_id == a.run_id))
        .where(*where, counted)
        .group_by(a.experiment, a.variant)
    )
    sent = (
        select(a.experiment, a.variant, func.count(distinct(o.id)))
        .select_from(
            ASSIGNMENTS.join(RUNS, r.run_id == a.run_id).join(
                OUTBOX, and_(o.run_id == a.run_id, o.variant == a.variant)
            )
        )
        .where(*where, o.status == "sent")
        .group_by(a.experiment, a.variant)
    )
    decisions = select(DECISIONS).where(DECISIONS.c.journey == journey)
    with store.engine.connect() as conn:
        counts = {
            (e, v): (int(n), int(c or 0), float(m or 0))
            for e, v, n, c, m in conn.execute(per_variant)
        }
        sends = {(e, v): int(n) for e, v, n in conn.execute(sent)}
        decided = {row.experiment: row for row in conn.execute(decisions)}
    declared = dict(cls.experiments) if cls is not None else {}
    names = list(declared) + sorted({e for e, _ in counts} - set(declared))
    results = []
    for name in names:
        experiment = declared.get(name)
        if experiment is not None:
            variants = list(experiment.variants)
        else:
            variants = sorted({v for e, v in counts if e == name})
        if not variants:
            continue
        baseline = variants[0]
        total = sum(experiment.weights.values()) if experiment is not None else None
        arms = {
            arm.variant: arm for arm in ExperimentActivities(store).arms(journey, name, variants)
        }
        base_n, base_c, _ = counts.get((name, baseline), (0, 0, 0.0))
        result = ExperimentResult(
            experiment=name,
            baseline=baseline,
            auto_winner=experiment.auto_winner if experiment is not None else False,
            alpha=experiment.alpha if experiment is not None else None,
        )
        for variant in variants:
            n, c, revenue = counts.get((name, variant), (0, 0, 0.0))
            vs_holdout = stats.lift(c, n, holdout_converted, holdout_entries)
            vs_base = stats.lift(c, n, base_c, base_n)
            p = None
            if variant != baseline and experiment is not None:
                p = always_valid_p(arms[variant], arms[baseline], experiment.effect)
            result.variants.append(
                VariantResult(
                    variant=variant,
                    share=experiment.weights[variant] / total if experiment and total else None,
                    entries=n,
                    sent=sends.get((name, variant), 0),
                    converted=c,
                    rate=stats.rate(c, n),
                    revenue_per_entry=revenue / n if n else None,
                    lift_vs_holdout=vs_holdout.absolute,
                    lift_vs_holdout_ci=_range(vs_holdout.absolute_ci),
                    lift_vs_baseline=vs_base.absolute if variant != baseline else None,
                    lift_vs_baseline_ci=_range(vs_base.absolute_ci)
                    if variant != baseline
                    else None,
                    always_valid_p=p,
                )
            )
        found = decided.get(name)
        if found is not None:
            result.decision = Decision(
                winner=found.winner,
                decided_at=_aware(found.decided_at),
                p_value=found.p_value,
                alpha=found.alpha,
                figures=found.figures,
            )
        results.append(result)
    return results


def _range(interval: stats.Interval | None) -> Interval | None:
    return Interval(low=interval.low, high=interval.high) if interval is not None else None


def _aware(when: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were written in UTC."""
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
