"""The statistics of a holdout test: lift with its interval and p-value, incremental revenue.

Normal approximations, as every growth team's calculator uses them: the unpooled (Wald)
interval for the difference of two proportions, the pooled two-proportion z-test for its
p-value, Katz's log interval for the relative lift, and Welch's interval for the difference of
mean revenue per entry. They are only trusted once the groups are large enough, which is why
`too_small` exists and the report prints its warning until then.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

CONFIDENCE = 0.95
Z = NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)  # 1.96

MIN_GROUP = 100
"""Fewer entries than this in either group: too small to tell, whatever the numbers say."""
MIN_CONVERSIONS = 5
"""Fewer conversions (or non-conversions) than this in a group: the normal approximation fails."""


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class Lift:
    """Treatment against holdout, on conversion rate."""

    treatment_rate: float | None
    holdout_rate: float | None
    absolute: float | None
    """Treatment rate minus holdout rate (0.04 is four percentage points)."""
    absolute_ci: Interval | None
    relative: float | None
    """Treatment rate over holdout rate, minus one (0.5 is +50 %)."""
    relative_ci: Interval | None
    p_value: float | None
    """Two-sided, two-proportion z-test: how surprising the difference is if there were none."""


def rate(conversions: int, size: int) -> float | None:
    return conversions / size if size else None


def lift(conv_t: int, n_t: int, conv_h: int, n_h: int) -> Lift:
    """Lift of the treatment (`conv_t` of `n_t`) over the holdout (`conv_h` of `n_h`)."""
    p_t, p_h = rate(conv_t, n_t), rate(conv_h, n_h)
    if p_t is None or p_h is None:
        return Lift(p_t, p_h, None, None, None, None, None)
    diff = p_t - p_h
    se = math.sqrt(p_t * (1 - p_t) / n_t + p_h * (1 - p_h) / n_h)
    absolute_ci = Interval(diff - Z * se, diff + Z * se)

    pooled = (conv_t + conv_h) / (n_t + n_h)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n_t + 1 / n_h))
    # Nobody (or everybody) converted in both groups: no evidence of any difference.
    p_value = math.erfc(abs(diff) / se0 / math.sqrt(2)) if se0 > 0 else 1.0

    relative = relative_ci = None
    if conv_h > 0:
        relative = p_t / p_h - 1
        if conv_t > 0:
            se_log = math.sqrt(1 / conv_t - 1 / n_t + 1 / conv_h - 1 / n_h)
            log_ratio = math.log(p_t / p_h)
            relative_ci = Interval(
                math.exp(log_ratio - Z * se_log) - 1, math.exp(log_ratio + Z * se_log) - 1
            )
    return Lift(p_t, p_h, diff, absolute_ci, relative, relative_ci, p_value)


@dataclass(frozen=True)
class Revenue:
    """Revenue per entry (entries without a purchase count as 0) and what the journey added."""

    per_entry_treatment: float | None
    per_entry_holdout: float | None
    incremental: float | None
    """(Per-entry treatment - per-entry holdout) x treatment entries: revenue the sends caused."""
    incremental_ci: Interval | None


def revenue(
    sum_t: float, sum_sq_t: float, n_t: int, sum_h: float, sum_sq_h: float, n_h: int
) -> Revenue:
    """From each group's revenue total and sum of squares (one row per entry, 0 for none)."""
    if not n_t or not n_h:
        return Revenue(sum_t / n_t if n_t else None, sum_h / n_h if n_h else None, None, None)
    mean_t, mean_h = sum_t / n_t, sum_h / n_h
    incremental = (mean_t - mean_h) * n_t
    ci = None
    if n_t > 1 and n_h > 1:
        var_t = max(0.0, (sum_sq_t - n_t * mean_t**2) / (n_t - 1))
        var_h = max(0.0, (sum_sq_h - n_h * mean_h**2) / (n_h - 1))
        se = math.sqrt(var_t / n_t + var_h / n_h) * n_t
        ci = Interval(incremental - Z * se, incremental + Z * se)
    return Revenue(mean_t, mean_h, incremental, ci)


def too_small(conv_t: int, n_t: int, conv_h: int, n_h: int) -> str | None:
    """Why the groups cannot tell yet, or None once the approximation holds."""
    if min(n_t, n_h) < MIN_GROUP:
        return f"too small to tell: each group needs at least {MIN_GROUP} entries"
    for name, conv, n in (("treatment", conv_t, n_t), ("holdout", conv_h, n_h)):
        if conv < MIN_CONVERSIONS or n - conv < MIN_CONVERSIONS:
            return (
                f"too small to tell: the {name} group needs at least {MIN_CONVERSIONS} "
                "conversions and non-conversions"
            )
    return None
