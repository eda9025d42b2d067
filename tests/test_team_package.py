"""The test of docs/authoring.md's journey package (tests/team_package): the journey runs on a
worker with the package's templates, which extend the shipped layout."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from activities.sending import SendingActivities
from activities.templates import Renderer
from starter.settings import Settings
from tests.conftest import NO_LIMITS
from tests.team_package.review_request import ReviewRequest

TEMPLATES = Path(__file__).resolve().parent / "team_package" / "templates"


async def test_asks_for_a_review_three_days_after_delivery(stack_for, store):
    renderer = Renderer(Settings(templates_dirs=str(TEMPLATES)).template_folders())
    sending = SendingActivities(store, renderer, policy=NO_LIMITS)
    stack = await stack_for(ReviewRequest, sending=sending)
    user = stack.user(treated_in=ReviewRequest, first_name="Ada")
    await stack.track("Order Delivered", user, {"name": "Velvet sofa"})

    await stack.advance("review_request", user, timedelta(days=3) - timedelta(minutes=1))
    assert stack.outbox(user) == []
    await stack.advance("review_request", user, timedelta(minutes=2))
    [ask] = stack.outbox(user)
    assert ask.subject == "How do you like the Velvet sofa?"
    assert "Hi Ada" in ask.body_html and "Unsubscribe" in ask.body_html  # the shipped layout
