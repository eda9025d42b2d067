"""A/B/n tests inside a journey: which copy, offer or timing works best, on top of the holdout
that proves the journey works at all.

    class CartRecovery(Journey):
        reminder_subject = Experiment("reminder_subject", {"control": 1, "urgent": 1},
                                      auto_winner=True)

        async def steps(self) -> None:
            variant = await self.variant(self.reminder_subject)
            await self.send("reminder", variant=variant, items=self.item_list())

A user's variant is a hash of (journey, experiment, user): the same user gets the same variant
on every entry, and no table has to exist before the first one. It is recorded with the run
(activities/experiments.py), in the step rows and on the message, so the report counts
conversions per variant. With `auto_winner`, a sequential test that stays valid however often
it is looked at (activities/sequential.py) decides; from then on every new entry gets the winner.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence

from workflows.errors import JourneyDefinitionError

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class Experiment:
    """An A/B/n test: named variants with weights, and an optional automatic winner.

    Args:
        name: lowercase with underscores; unique within the journey.
        variants: variant names to weights ({"control": 1, "urgent": 1}), or a sequence of
            names with equal weights. The first is the baseline the others are compared with.
            A name is also a template suffix: `send("reminder", variant="urgent")` renders
            `reminder.urgent.subject` where it exists, else `reminder.subject`.
        auto_winner: once one variant converts better than every other with the sequential
            test's confidence, new entries all get it (recorded, with its figures and time).
        alpha: the test's false-winner rate: the chance of declaring a winner when no variant
            is better, however often it is looked at.
        min_entries: entries each variant needs (closed, in the treatment group) before any
            decision.
        effect: the size of difference the test is tuned to find quickly (absolute, in
            conversion rate: 0.02 is two points); smaller and larger ones are found too.
    """

    def __init__(
        self,
        name: str,
        variants: Mapping[str, float] | Sequence[str],
        *,
        auto_winner: bool = False,
        alpha: float = 0.05,
        min_entries: int = 200,
        effect: float = 0.02,
    ) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise JourneyDefinitionError(
                f"Experiment name must be lowercase letters, digits and underscores: {name!r}"
            )
        weights = dict(variants) if isinstance(variants, Mapping) else dict.fromkeys(variants, 1.0)
        if len(weights) < 2:
            raise JourneyDefinitionError(f"Experiment {name!r} needs at least two variants")
        for variant, weight in weights.items():
            if not isinstance(variant, str) or not _NAME.match(variant):
                raise JourneyDefinitionError(
                    f"Experiment {name!r}: variant names are lowercase letters, digits and "
                    f"underscores (they name template files): {variant!r}"
                )
            if not isinstance(weight, int | float) or isinstance(weight, bool) or weight <= 0:
                raise JourneyDefinitionError(
                    f"Experiment {name!r}: variant {variant!r} needs a positive weight"
                )
        if not 0 < alpha < 0.5:
            raise JourneyDefinitionError(f"Experiment {name!r}: alpha must be in (0, 0.5)")
        if min_entries < 1 or not 0 < effect < 1:
            raise JourneyDefinitionError(
                f"Experiment {name!r}: min_entries must be positive, effect in (0, 1)"
            )
        self.name = name
        self.weights: dict[str, float] = {k: float(v) for k, v in weights.items()}
        self.auto_winner = auto_winner
        self.alpha = alpha
        self.min_entries = min_entries
        self.effect = effect

    @property
    def variants(self) -> tuple[str, ...]:
        """Variant names, the baseline first."""
        return tuple(self.weights)

    @property
    def baseline(self) -> str:
        return self.variants[0]

    def assign(self, journey: str, user_id: str) -> str:
        """The user's variant by weight: a stable hash, so every entry and worker agrees."""
        digest = hashlib.sha256(f"{journey}\x1f{self.name}\x1f{user_id}".encode()).digest()
        point = int.from_bytes(digest[:8], "big") / 2**64 * sum(self.weights.values())
        for variant, weight in self.weights.items():
            if point < weight:
                return variant
            point -= weight
        return self.variants[-1]  # rounding at the very top of the range

    def __repr__(self) -> str:
        shares = ", ".join(f"{k}={v:g}" for k, v in self.weights.items())
        return f"Experiment({self.name!r}, {shares}{', auto_winner' if self.auto_winner else ''})"
