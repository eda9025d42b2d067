"""The statistics against values worked by hand (and by R's prop.test without correction)."""

from __future__ import annotations

import math

import pytest

from starter import stats


def test_lift_of_twelve_against_eight_percent_in_a_thousand_each():
    lift = stats.lift(120, 1000, 80, 1000)
    assert lift.treatment_rate == 0.12 and lift.holdout_rate == 0.08
    assert lift.absolute == pytest.approx(0.04)
    se = math.sqrt(0.12 * 0.88 / 1000 + 0.08 * 0.92 / 1000)
    assert lift.absolute_ci is not None
    assert lift.absolute_ci.low == pytest.approx(0.04 - 1.959964 * se, abs=1e-6)
    assert lift.absolute_ci.high == pytest.approx(0.04 + 1.959964 * se, abs=1e-6)
    # prop.test(c(120, 80), c(1000, 1000), correct = FALSE): X-squared = 8.8889, p = 0.002869
    assert lift.p_value == pytest.approx(0.002869, abs=2e-6)
    assert lift.relative == pytest.approx(0.5)
    assert lift.relative_ci is not None and lift.relative_ci.contains(0.5)
    assert 0.1 < lift.relative_ci.low < 0.5 < lift.relative_ci.high < 1.1


def test_no_difference_has_p_one_and_an_interval_around_zero():
    lift = stats.lift(50, 500, 50, 500)
    assert lift.absolute == 0 and lift.p_value == pytest.approx(1.0)
    assert lift.absolute_ci is not None and lift.absolute_ci.contains(0.0)


def test_empty_groups_give_no_numbers_instead_of_dividing_by_zero():
    lift = stats.lift(0, 0, 3, 10)
    assert lift.absolute is None and lift.p_value is None and lift.treatment_rate is None
    nobody = stats.lift(0, 100, 0, 100)
    assert nobody.absolute == 0 and nobody.p_value == 1.0 and nobody.relative is None


def test_incremental_revenue_counts_non_buyers_as_zero():
    # Treatment: 4 entries, two bought 30 and 10. Holdout: 2 entries, one bought 20.
    money = stats.revenue(40.0, 30**2 + 10**2, 4, 20.0, 20**2, 2)
    assert money.per_entry_treatment == 10.0 and money.per_entry_holdout == 10.0
    assert money.incremental == 0.0
    var_t = (1000 - 4 * 10.0**2) / 3
    var_h = (400 - 2 * 10.0**2) / 1
    se = math.sqrt(var_t / 4 + var_h / 2) * 4
    assert money.incremental_ci is not None
    assert money.incremental_ci.high == pytest.approx(1.959964 * se, abs=1e-4)


def test_small_groups_are_flagged_until_the_approximation_holds():
    assert "100 entries" in (stats.too_small(10, 50, 5, 50) or "")
    assert "conversions" in (stats.too_small(2, 500, 30, 500) or "")
    assert stats.too_small(60, 500, 40, 500) is None
