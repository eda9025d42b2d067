"""A sequential test for A/B/n experiments that stays valid however often it is looked at.

A fixed-sample z-test checked every day declares false winners far more often than its 5 %:
each look is another chance. This is the mixture sequential probability ratio test (mSPRT) of
Johari, Koomen, Pekelis and Walsh, "Always Valid Inference" (2017; the engine behind
Optimizely's Stats Engine), for the difference of two conversion rates with the normal
approximation: with a normal mixing distribution N(0, tau^2) over the true difference,

    Lambda_n = sqrt(V / (V + tau^2)) * exp(tau^2 * d^2 / (2 * V * (V + tau^2)))

where d is the observed difference and V its variance. `1 / Lambda_n` is an always-valid
p-value: the chance that it ever drops below alpha, at any look, is at most alpha when the
rates are equal. With k variants the winner must beat each of the other k - 1 at alpha / (k - 1)
(Bonferroni), so the false-winner rate of the whole experiment stays within alpha.
`bench/experiments.py` checks both claims by simulation against a known truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Arm:
    """One variant's closed treatment entries and the conversions among them."""

    variant: str
    entries: int
    conversions: int

    @property
    def rate(self) -> float | None:
        return self.conversions / self.entries if self.entries else None


@dataclass(frozen=True)
class Decision:
    """A winner, the largest of its always-valid p-values against the others, and the bar."""

    winner: str
    p_value: float
    threshold: float


def always_valid_p(a: Arm, b: Arm, effect: float) -> float:
    """The always-valid p-value of "a and b convert alike" (two-sided), at this look.

    `effect` sets the mixing spread tau: the difference the test finds fastest."""
    if a.entries == 0 or b.entries == 0:
        return 1.0
    p_a, p_b = a.conversions / a.entries, b.conversions / b.entries
    # A rate of exactly 0 or 1 has no variance; half a conversion keeps V honest when small.
    p_a = min(max(p_a, 0.5 / a.entries), 1 - 0.5 / a.entries)
    p_b = min(max(p_b, 0.5 / b.entries), 1 - 0.5 / b.entries)
    variance = p_a * (1 - p_a) / a.entries + p_b * (1 - p_b) / b.entries
    tau2 = effect * effect
    diff = a.conversions / a.entries - b.conversions / b.entries
    log_lambda = 0.5 * math.log(variance / (variance + tau2)) + (
        tau2 * diff * diff / (2 * variance * (variance + tau2))
    )
    return min(1.0, math.exp(-log_lambda))


def decide(arms: list[Arm], *, alpha: float, min_entries: int, effect: float) -> Decision | None:
    """The winner, if one variant converts better than every other at alpha / (k - 1) each.

    None until every variant has `min_entries` closed entries (the normal approximation needs
    them), and while no variant beats all the others."""
    if len(arms) < 2 or any(arm.entries < min_entries for arm in arms):
        return None
    threshold = alpha / (len(arms) - 1)
    best = max(arms, key=lambda arm: (arm.rate or 0.0, -arms.index(arm)))
    worst_p = 0.0
    for other in arms:
        if other is best:
            continue
        if (other.rate or 0.0) >= (best.rate or 0.0):
            return None
        worst_p = max(worst_p, always_valid_p(best, other, effect))
        if worst_p >= threshold:
            return None
    return Decision(winner=best.variant, p_value=worst_p, threshold=threshold)
