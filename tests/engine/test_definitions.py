"""A journey written wrong fails at import time with a message that says what to fix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workflows import (
    DuplicateJourneyError,
    Goal,
    Journey,
    JourneyDefinitionError,
    Trigger,
    UnknownJourneyError,
    registry,
)
from workflows.journeys import CartRecovery, FeatureAdoption
from workflows.models import Event, Profile
from workflows.segments import Never, Segment, never


def test_a_journey_needs_a_valid_name():
    with pytest.raises(JourneyDefinitionError, match="lowercase"):

        class Bad(Journey):
            name = "Bad Name"
            trigger = Trigger("X")

            async def steps(self) -> None: ...


def test_a_journey_needs_a_trigger_and_steps():
    with pytest.raises(JourneyDefinitionError, match="trigger = Trigger"):

        class NoTrigger(Journey):
            name = "t_no_trigger"

            async def steps(self) -> None: ...

    with pytest.raises(JourneyDefinitionError, match="define `async def steps"):

        class NoSteps(Journey):
            name = "t_no_steps"
            trigger = Trigger("X")


def test_holdout_and_windows_are_checked():
    with pytest.raises(JourneyDefinitionError, match="holdout"):

        class AllHeldOut(Journey):
            name = "t_all_held_out"
            trigger = Trigger("X")
            holdout = 1.0

            async def steps(self) -> None: ...

    with pytest.raises(JourneyDefinitionError, match="positive"):
        Goal("Order Completed", within=timedelta(0))


def test_two_unrelated_journeys_cannot_share_a_name():
    with pytest.raises(DuplicateJourneyError, match="cart_recovery"):
        import tests.engine.impostor  # noqa: F401

    assert registry.get("cart_recovery") is CartRecovery


def test_a_subclass_can_take_over_a_shipped_journey_to_change_its_settings():
    before = registry.get("cart_recovery")
    try:
        from tests.engine.quicker_cart import QuickerCart

        assert registry.get("cart_recovery") is QuickerCart
        assert QuickerCart.inaction_window == timedelta(minutes=30)
        assert QuickerCart.handlers == CartRecovery.handlers
    finally:
        registry._JOURNEYS["cart_recovery"] = (before.__module__, before.__qualname__)
        registry._ANCESTORS["cart_recovery"] = {
            (c.__module__, c.__qualname__) for c in before.__mro__
        }


def test_journeys_must_be_importable_by_the_worker():
    with pytest.raises(JourneyDefinitionError, match="top level"):

        class Hidden(Journey):
            name = "t_hidden"
            trigger = Trigger("X")

            async def steps(self) -> None: ...


def test_unknown_journey_names_are_named_errors():
    with pytest.raises(UnknownJourneyError, match="no_such_journey"):
        registry.get("no_such_journey")


def test_events_of_interest_cover_trigger_goal_handlers_and_listens():
    assert CartRecovery.events_of_interest() == {
        "Product Added",  # trigger (one product) and handler
        "Checkout Started",  # trigger (the whole cart) and handler
        "Cart Updated",  # trigger (Shopify's checkouts/update) and handler
        "Cart Viewed",  # restarts the quiet period, and handler
        "Product Removed",
        "Order Completed",
    }


class AdoptDashboards(FeatureAdoption):
    """A team's variant: another target feature, by changing attributes only."""

    name = "t_adopt_dashboards"
    target_event = "Dashboard Shared"
    adoption_window = timedelta(days=14)


def test_a_subclass_changing_attributes_gets_a_consistent_goal_and_segment():
    assert AdoptDashboards.goal is not None
    assert AdoptDashboards.goal.events == ("Dashboard Shared",)
    assert AdoptDashboards.goal.within == timedelta(days=14)
    assert AdoptDashboards.segment is not None
    never_did = [c for c in AdoptDashboards.segment.conditions if isinstance(c, Never)]
    assert never_did == [Never(("Dashboard Shared",))]
    # The shipped journey is unchanged.
    assert FeatureAdoption.goal is not None and FeatureAdoption.goal.events == ("Report Created",)


def test_trigger_and_segment_declarations_are_checked():
    with pytest.raises(JourneyDefinitionError, match="within"):
        Trigger("Product Viewed", times=3)
    with pytest.raises(JourneyDefinitionError, match="not both"):
        Trigger("Invite Sent", nth=3, times=2, within=timedelta(days=1))
    with pytest.raises(JourneyDefinitionError, match="at least one condition"):
        Segment()
    with pytest.raises(JourneyDefinitionError, match="reentry"):

        class NoReentry(Journey):
            name = "t_no_reentry"
            segment = Segment(never("Report Created"))

            async def steps(self) -> None:
                pass

    with pytest.raises(JourneyDefinitionError, match="trigger"):

        class NoEntry(Journey):
            name = "t_no_entry"

            async def steps(self) -> None:
                pass


def test_nth_trigger_matches_only_the_nth_event():
    trigger = Trigger("Invite Sent", nth=3)
    event = Event(name="Invite Sent", user_id="u", message_id="m", timestamp=datetime.now(UTC))
    profile = Profile(user_id="u")
    assert [trigger.matches(event, profile, n) for n in (1, 2, 3, 4)] == [
        False, False, True, False,
    ]  # fmt: skip
