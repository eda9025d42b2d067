"""The journeys this product ships; importing this package registers them."""

from workflows.journeys.cart_recovery import CartRecovery

__all__ = ["CartRecovery"]
