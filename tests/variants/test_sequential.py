"""The automatic winner's rule against a known truth (bench/experiments.py runs it larger):
looked at every day, it declares a false winner no more often than its alpha, and finds a real
one."""

from __future__ import annotations

from activities.sequential import Arm, always_valid_p, decide
from bench.experiments import simulate

DAILY = {"experiments": 300, "days": 60, "per_day": 100}


def test_with_no_difference_false_winners_stay_within_alpha_however_often_it_looks():
    for rates in ({"a": 0.10, "b": 0.10}, {"a": 0.04, "b": 0.04, "c": 0.04}):
        outcomes = simulate(rates, alpha=0.05, **DAILY)
        false = sum(o.winner is not None for o in outcomes) / len(outcomes)
        assert false <= 0.05, rates


def test_a_real_winner_is_found_and_no_other_variant_is_declared():
    outcomes = simulate({"a": 0.10, "b": 0.13}, alpha=0.05, **DAILY)
    assert sum(o.winner == "b" for o in outcomes) / len(outcomes) >= 0.9
    assert not [o for o in outcomes if o.winner == "a"]


def test_no_decision_before_every_variant_has_its_minimum():
    arms = [Arm("a", 150, 5), Arm("b", 250, 100)]
    assert decide(arms, alpha=0.05, min_entries=200, effect=0.02) is None
    arms = [Arm("a", 250, 5), Arm("b", 250, 100)]
    decision = decide(arms, alpha=0.05, min_entries=200, effect=0.02)
    assert decision is not None and decision.winner == "b"
    assert decision.p_value == always_valid_p(arms[1], arms[0], 0.02) < 0.05
