"""Known-truth simulation of the A/B/n winner rule (activities/sequential.py).

Simulated experiments get entries every day and are looked at every day, as the worker does
(it asks again at each assignment, at most hourly). With no true difference, the share of
experiments that ever declare a winner must stay within alpha; with a true winner, the rule
should pick it, and (almost) never another variant.

    python -m bench.experiments [--experiments 1000] [--days 60] [--per-day 100]
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass

from activities.sequential import Arm, decide


@dataclass(frozen=True)
class Outcome:
    winner: str | None
    day: int | None


def run_one(
    rates: dict[str, float],
    rng: random.Random,
    *,
    days: int,
    per_day: int,
    alpha: float,
    min_entries: int,
    effect: float,
) -> Outcome:
    """One experiment: `per_day` entries per variant per day, a look at the end of each day."""
    entries = dict.fromkeys(rates, 0)
    conversions = dict.fromkeys(rates, 0)
    for day in range(1, days + 1):
        for variant, rate in rates.items():
            entries[variant] += per_day
            conversions[variant] += sum(rng.random() < rate for _ in range(per_day))
        arms = [Arm(v, entries[v], conversions[v]) for v in rates]
        decision = decide(arms, alpha=alpha, min_entries=min_entries, effect=effect)
        if decision is not None:
            return Outcome(decision.winner, day)
    return Outcome(None, None)


def simulate(
    rates: dict[str, float],
    *,
    experiments: int,
    days: int,
    per_day: int,
    alpha: float = 0.05,
    min_entries: int = 200,
    effect: float = 0.02,
    seed: int = 7,
) -> list[Outcome]:
    rng = random.Random(seed)
    return [
        run_one(
            rates,
            rng,
            days=days,
            per_day=per_day,
            alpha=alpha,
            min_entries=min_entries,
            effect=effect,
        )
        for _ in range(experiments)
    ]


def summary(name: str, rates: dict[str, float], outcomes: list[Outcome], truth: str | None) -> str:
    n = len(outcomes)
    decided = [o for o in outcomes if o.winner is not None]
    right = sum(o.winner == truth for o in decided) if truth else 0
    wrong = len(decided) - right
    days = sorted(o.day for o in decided if o.day is not None)
    median_day = days[len(days) // 2] if days else None
    shown = ", ".join(f"{k} {v:.1%}" for k, v in rates.items())
    return (
        f"{name:<28} {shown:<34} decided {len(decided) / n:6.1%}  "
        f"true winner {right / n:6.1%}  false winner {wrong / n:6.1%}  "
        f"median day {median_day if median_day is not None else '-'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiments", type=int, default=1000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--per-day", type=int, default=100, help="entries per variant per day")
    parser.add_argument("--alpha", type=float, default=0.05)
    args = parser.parse_args()
    common = {"experiments": args.experiments, "days": args.days, "per_day": args.per_day}
    print(
        f"{args.experiments} experiments each, {args.per_day} entries per variant per day, "
        f"looked at daily for {args.days} days, alpha {args.alpha}"
    )
    cases: list[tuple[str, dict[str, float], str | None]] = [
        ("no difference (A/B)", {"a": 0.10, "b": 0.10}, None),
        ("no difference (A/B/C)", {"a": 0.10, "b": 0.10, "c": 0.10}, None),
        ("B better by 3 points", {"a": 0.10, "b": 0.13}, "b"),
        ("C better by 2 points", {"a": 0.05, "b": 0.05, "c": 0.07}, "c"),
    ]
    for name, rates, truth in cases:
        outcomes = simulate(rates, alpha=args.alpha, **common)
        print(summary(name, rates, outcomes, truth))


if __name__ == "__main__":
    main()
