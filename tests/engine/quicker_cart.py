"""A team's own cart recovery: the shipped journey with a shorter inaction window."""

from datetime import timedelta

from workflows.journeys import CartRecovery


class QuickerCart(CartRecovery):
    inaction_window = timedelta(minutes=30)
