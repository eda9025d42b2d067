"""Every shipped journey's templates render, with realistic data and with no optional data.

No Temporal here: each step is rendered by the real `Renderer` over `templates/`, with a context
built the way `SendingActivities.context_for` builds it (company, the journey's own values from
`preview_context`, then `user`, `event`, `journey`, `step` and `unsubscribe_url`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import workflows.journeys  # noqa: F401  (registers every shipped journey)
from activities.templates import RenderedMessage, Renderer
from workflows import registry

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
UNSUBSCRIBE = "https://journeys.test/u/token-123"
COMPANY = {"company_name": "Acme", "postal_address": "1 Main Street, Springfield"}

EXPECTED_STEPS: dict[str, list[str]] = {
    "onboarding": ["welcome", "first_tips", "second_tips"],
    "browse_abandonment": ["offer"],
    "upgrade_prompt": ["team_plan"],
    "trial_expiring": ["trial_ending"],
    "feature_adoption": ["introduction", "tutorial", "personal_note"],
    "win_back": ["feedback", "whats_new", "offer"],
    "cart_recovery": ["reminder", "social_proof", "incentive"],
}
"""The step names each shipped journey passes to `send`."""

IN_APP = {("upgrade_prompt", "team_plan")}
"""Steps sent on the in-app channel: an HTML fragment, without the email layout."""

DISCOUNT_STEPS = {
    ("browse_abandonment", "offer"),
    ("cart_recovery", "incentive"),
    ("win_back", "offer"),
}
"""The only steps that may mention a discount."""

SAMPLE_EVENTS: dict[str, dict[str, Any]] = {
    "onboarding": {"plan": "starter"},
    "browse_abandonment": {
        "product_id": "sofa",
        "name": "Velvet sofa",
        "price": 899,
        "currency": "EUR",
        "url": "https://shop.test/sofa",
        "image_url": "https://shop.test/sofa.jpg",
    },
    "upgrade_prompt": {"invitee_email": "kim@example.test"},
    "trial_expiring": {"plan": "pro", "trial_end": "2025-03-04T00:00:00Z"},
    "feature_adoption": {"segment": "feature_adoption", "as_of": "2025-03-01T09:00:00+00:00"},
    "win_back": {"plan": "pro"},
    "cart_recovery": {
        "product_id": "chair",
        "name": "Oak chair",
        "price": 120,
        "currency": "USD",
        "rating": 4.8,
        "review_count": 212,
        "recent_buyers": 37,
        "checkout_url": "https://shop.test/cart",
    },
}
"""A realistic entry event's properties for each journey."""

USER = {"user_id": "u-1", "email": "ada@example.test", "first_name": "Ada"}
NAMELESS_USER = {"user_id": "u-2", "email": "someone@example.test"}


def shipped_journeys() -> list[str]:
    """The names of the journeys `workflows.journeys` registers (a test's subclass may hold a
    shipped name; test-only journeys have no folder under `templates/`)."""
    return sorted(
        cls.name
        for cls in registry.all_journeys()
        if cls.__module__.startswith("workflows.journeys.") or (TEMPLATES / cls.name).is_dir()
    )


def steps_with_templates() -> list[tuple[str, str]]:
    """(journey, step) for every `templates/<journey>/<step>.subject` of a shipped journey."""
    return [
        (journey, path.stem)
        for journey in shipped_journeys()
        for path in sorted((TEMPLATES / journey).glob("*.subject"))
        if "." not in path.stem  # reminder.urgent.subject is a variant's part, not a step
    ]


def test_each_variant_part_belongs_to_a_declared_variant_and_renders(renderer) -> None:
    """`<step>.<variant>.subject`: the journey declares that variant, and it renders in place
    of the step's own subject."""
    journeys = {cls.name: cls for cls in registry.all_journeys()}
    parts = sorted(TEMPLATES.glob("*/*.*.subject"))
    assert parts, "the shipped cart recovery has a subject-line test"
    for path in parts:
        step, variant = path.stem.split(".")
        journey = journeys[path.parent.name]
        declared = {v for e in journey.experiments.values() for v in e.variants}
        assert variant in declared, f"{path}: {journey.name} declares no variant {variant!r}"
        context = {"user": {"first_name": "Ada"}, "items": [], "unsubscribe_url": "u"}
        plain = renderer.render(journey.name, step, context)
        varied = renderer.render(journey.name, step, context, variant=variant)
        assert varied.subject != plain.subject and varied.subject.startswith("Ada")
        assert varied.html == plain.html  # the body is the step's own


STEPS = steps_with_templates()
EXPECTED = [(journey, step) for journey, steps in EXPECTED_STEPS.items() for step in steps]


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(TEMPLATES)


def context(
    journey: str, step: str, event: dict[str, Any], user: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What `SendingActivities.context_for` gives the templates, with the journey's preview
    values standing in for what its `send(...)` passes."""
    return {
        **COMPANY,
        **registry.get(journey).preview_context(event),
        "user": dict(USER if user is None else user),
        "event": event,
        "journey": journey,
        "step": step,
        "unsubscribe_url": UNSUBSCRIBE,
    }


def render(
    renderer: Renderer, journey: str, step: str, event: dict[str, Any] | None = None, **ctx: Any
) -> RenderedMessage:
    sample = dict(SAMPLE_EVENTS.get(journey, {}) if event is None else event)
    values = context(journey, step, sample)
    values.update(ctx)
    return renderer.render(journey, step, values)


def everything(message: RenderedMessage) -> str:
    return f"{message.subject}\n{message.html}\n{message.text}"


# Coverage ------------------------------------------------------------------------------------


def test_every_shipped_journey_has_its_steps_listed_here():
    assert shipped_journeys() == sorted(EXPECTED_STEPS)


@pytest.mark.parametrize(("journey", "step"), EXPECTED)
def test_every_step_a_journey_sends_has_a_subject_and_html(journey, step):
    assert (TEMPLATES / journey / f"{step}.subject").is_file()
    assert (TEMPLATES / journey / f"{step}.html").is_file()
    if (journey, step) not in IN_APP:
        assert (TEMPLATES / journey / f"{step}.txt").is_file()


def test_no_template_is_left_without_a_step():
    assert sorted(STEPS) == sorted(EXPECTED)


# Every template, with sample data and without ----------------------------------------------


@pytest.mark.parametrize(("journey", "step"), STEPS)
def test_renders_with_a_realistic_event(renderer, journey, step):
    message = render(renderer, journey, step)
    source = (TEMPLATES / journey / f"{step}.subject").read_text()
    assert len(source.strip().splitlines()) == 1
    assert message.subject and "\n" not in message.subject
    assert "None" not in everything(message)
    if (journey, step) in IN_APP:
        assert UNSUBSCRIBE not in message.html
        assert "<html" not in message.html and "<body" not in message.html
    else:
        assert f'<a href="{UNSUBSCRIBE}">Unsubscribe</a>' in message.html
        assert "Acme, 1 Main Street, Springfield" in message.html
        assert message.text.endswith(f"Unsubscribe: {UNSUBSCRIBE}")
    if (journey, step) not in DISCOUNT_STEPS:
        assert "%" not in everything(message)


@pytest.mark.parametrize(("journey", "step"), STEPS)
def test_renders_with_an_empty_event_and_no_first_name(renderer, journey, step):
    values = context(journey, step, {}, user=NAMELESS_USER)
    values.pop("postal_address")
    message = renderer.render(journey, step, values)
    assert message.subject and "\n" not in message.subject
    assert "None" not in everything(message)
    if (journey, step) not in IN_APP:
        assert UNSUBSCRIBE in message.html
        assert message.text.endswith(f"Unsubscribe: {UNSUBSCRIBE}")
    if "Hi " in message.html:
        assert "Hi there" in message.html


GREETING = [(j, s) for j, s in STEPS if "first_name" in (TEMPLATES / j / f"{s}.html").read_text()]


@pytest.mark.parametrize(("journey", "step"), GREETING)
def test_the_first_name_shows_when_known(renderer, journey, step):
    assert "Ada" in render(renderer, journey, step).html


def test_a_null_first_name_reads_as_a_greeting_not_none(renderer):
    values = context("cart_recovery", "reminder", {}, user={**NAMELESS_USER, "first_name": None})
    message = renderer.render("cart_recovery", "reminder", values)
    assert "None" not in message.subject + message.html
    assert "Hi there" in message.html


# What each message must say ----------------------------------------------------------------


def test_onboarding_welcome_greets_by_name_and_shows_the_plan(renderer):
    welcome = render(renderer, "onboarding", "welcome")
    assert welcome.subject == "Welcome to Acme, Ada"
    assert "starter" in welcome.html and "starter" in welcome.text
    nameless = renderer.render(
        "onboarding", "welcome", context("onboarding", "welcome", {}, user=NAMELESS_USER)
    )
    assert nameless.subject == "Welcome to Acme"


def test_browse_offer_names_the_product_and_gives_the_code(renderer):
    offer = render(renderer, "browse_abandonment", "offer", expires_on="March 07")
    assert "Velvet sofa" in offer.subject and "5%" in offer.subject
    assert "Velvet sofa" in offer.html and "Velvet sofa" in offer.text
    assert "LOOKAGAIN5" in offer.html and "LOOKAGAIN5" in offer.text
    assert "5%" in offer.html and "March 07" in offer.html and "March 07" in offer.text
    assert "899.00 EUR" in offer.html
    assert 'href="https://shop.test/sofa"' in offer.html
    assert 'src="https://shop.test/sofa.jpg"' in offer.html


def test_browse_offer_escapes_event_html_and_links_only_web_addresses(renderer):
    event = {"name": "<b>Sofa</b>", "url": "javascript:alert(1)", "image_url": "data:x"}
    offer = render(renderer, "browse_abandonment", "offer", event)
    assert "&lt;b&gt;Sofa&lt;/b&gt;" in offer.html and "<b>Sofa</b>" not in offer.html
    assert "javascript:" not in offer.html and "javascript:" not in offer.text
    assert "<img" not in offer.html


def test_upgrade_prompt_suggests_the_team_plan_in_app(renderer):
    message = render(renderer, "upgrade_prompt", "team_plan", has_invitee=True)
    assert "team plan" in message.subject
    assert "3 collaborators" in message.html and "team plan" in message.html
    assert "invite is on its way" in message.html


def test_trial_ending_says_how_many_days_are_left_and_when(renderer):
    message = render(renderer, "trial_expiring", "trial_ending")
    assert "3 days" in message.subject and "pro" in message.subject
    assert "March 04" in message.html and "March 04" in message.text
    one_day = render(renderer, "trial_expiring", "trial_ending", days_left=1)
    assert one_day.subject.endswith("ends in 1 day")


@pytest.mark.parametrize("step", EXPECTED_STEPS["feature_adoption"])
def test_feature_adoption_is_about_the_feature(renderer, step):
    message = render(renderer, "feature_adoption", step)
    assert "reports" in message.subject
    assert "reports" in message.html and "reports" in message.text


def test_feature_adoption_steps_do_their_job(renderer):
    intro = render(renderer, "feature_adoption", "introduction")
    assert "What it does" in intro.html and "How teams use it" in intro.html
    tutorial = render(renderer, "feature_adoption", "tutorial")
    assert "<ol>" in tutorial.html and "Try it today" in tutorial.html
    note = render(renderer, "feature_adoption", "personal_note")
    assert "customer success team" in note.html and "walk you through it live" in note.html


def test_win_back_feedback_asks_and_offers_nothing(renderer):
    cancelled = render(renderer, "win_back", "feedback")
    assert "cancelled your pro subscription" in cancelled.html
    went_quiet = render(renderer, "win_back", "feedback", SAMPLE_EVENTS["feature_adoption"])
    assert "cancelled" not in went_quiet.html and "for a while" in went_quiet.html
    for message in (cancelled, went_quiet):
        assert "what did not work for you" in message.html
        assert "WELCOMEBACK30" not in everything(message) and "%" not in everything(message)
        assert "off" not in message.subject.lower().split()


def test_win_back_offer_has_the_code_and_its_expiry(renderer):
    offer = render(renderer, "win_back", "offer", expires_on="May 20")
    assert "30%" in offer.subject and "May 20" in offer.subject
    assert "WELCOMEBACK30" in offer.html and "WELCOMEBACK30" in offer.text
    assert "30%" in offer.html and "May 20" in offer.html and "May 20" in offer.text


def test_cart_social_proof_shows_ratings_reviews_and_recent_buyers(renderer):
    message = render(renderer, "cart_recovery", "social_proof")
    assert "Oak chair" in message.html
    for part in ("Rated 4.8 out of 5 from 212 reviews", "37 customers bought this recently"):
        assert part in message.html and part in message.text
    assert "COMEBACK10" not in everything(message)


def test_cart_social_proof_shows_only_what_each_item_has(renderer):
    items = [
        {"name": "Brass lamp", "recent_buyers": 1},
        {"name": "Wool rug", "review_count": "8"},
        {"name": "Side table", "rating": None, "recent_buyers": 0},
    ]
    message = render(renderer, "cart_recovery", "social_proof", {}, items=items)
    assert "1 customer bought this recently" in message.html
    assert "8 customer reviews" in message.html
    assert "Rated" not in message.html and "0 customers" not in message.html
    assert message.html.count("bought this recently") == 1


def test_cart_incentive_text_has_the_code(renderer):
    message = render(renderer, "cart_recovery", "incentive")
    assert "COMEBACK10" in message.text and "10%" in message.text and "Oak chair" in message.text
