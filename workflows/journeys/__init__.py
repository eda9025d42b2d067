"""The journeys this product ships; importing this package registers every module in it.

A new journey is a new module here (and its templates): nothing else needs to change.

Inside the workflow sandbox nothing is imported up front: the engine imports the one journey
module a workflow runs, by name, so each new journey workflow loads one small module rather
than all of them. The classes are still importable from the package by name.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, Any

from temporalio import workflow

if TYPE_CHECKING:
    from workflows.journeys.browse_abandonment import BrowseAbandonment
    from workflows.journeys.cart_recovery import CartRecovery
    from workflows.journeys.feature_adoption import FeatureAdoption
    from workflows.journeys.onboarding import Onboarding
    from workflows.journeys.trial_expiring import TrialExpiring
    from workflows.journeys.upgrade_prompt import UpgradePrompt
    from workflows.journeys.win_back import WinBack

_MODULES = {
    "BrowseAbandonment": "browse_abandonment",
    "CartRecovery": "cart_recovery",
    "FeatureAdoption": "feature_adoption",
    "Onboarding": "onboarding",
    "TrialExpiring": "trial_expiring",
    "UpgradePrompt": "upgrade_prompt",
    "WinBack": "win_back",
}

__all__ = [
    "BrowseAbandonment",
    "CartRecovery",
    "FeatureAdoption",
    "Onboarding",
    "TrialExpiring",
    "UpgradePrompt",
    "WinBack",
]


def __getattr__(name: str) -> Any:
    """`from workflows.journeys import CartRecovery` imports just that journey's module."""
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)


if not workflow.unsafe.in_sandbox():
    # The worker, the API and the CLI load every module here, new ones included.
    for _module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{_module.name}")
