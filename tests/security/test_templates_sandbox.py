"""Templates run in Jinja2's immutable sandbox: no way to Python internals, and no mail if tried.

Template authors are trusted to write emails, not code that runs in the worker: an expression
that climbs to a class, a function's globals or the template's own context fails to render,
and the send is skipped as "template_error" with nothing sent. User data is never template
source: a trait that looks like a template is printed as text (and escaped in HTML).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from activities.sending import DeliveryPolicy, SendingActivities
from activities.templates import Renderer, TemplateRenderError
from tests.delivery.journeys import Promo

ESCAPES = {
    "str-mro": "{{ ''.__class__.__mro__ }}",
    "subclasses": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "subclasses-loop": "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "cycler-globals": "{{ cycler.__init__.__globals__ }}",
    "joiner-os": "{{ joiner.__init__.__globals__.os }}",
    "lipsum-popen": "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "namespace-globals": "{{ namespace.__init__.__globals__ }}",
    "template-context": "{{ self._TemplateReference__context }}",
    "template-dict": "{{ self.__dict__ }}",
    "flask-config": "{{ config.items() }}",
    "request": "{{ request.environ }}",
    "attr-filter": "{{ user|attr('__class__') }}",
    "item-syntax": "{{ user['__class__'] }}",
    "format-string": "{{ '{0.__class__.__init__.__globals__}'.format(user) }}",
    "type-mro": "{{ dict.mro() }}",
    "mutate-user": "{{ user.update({'email': 'attacker@example.test'}) }}",
    "mutate-event": "{{ event.clear() }}",
    "huge-range": "{{ range(10**8)|list|length }}",
    "division": "{{ 1 / 0 }}",
}
"""Classic server-side template injection payloads, and failures of the template's own code."""

LEAKS = ("<class", "<module", "<function", "os.", "subprocess", "Popen", "uid=", "__builtins__")
"""What a leak would print; never in an error message (it is logged and recorded)."""

CONTEXT = {
    "user": {"email": "ada@example.test", "first_name": "Ada"},
    "event": {"sku": "lamp"},
    "journey": "t_promo",
    "step": "attack",
    "unsubscribe_url": "https://journeys.test/u/token",
}


def templates(folder: Path, html: str) -> Path:
    """A templates folder whose t_promo "first" step has `html` as its body."""
    step = folder / "t_promo"
    step.mkdir(parents=True, exist_ok=True)
    (step / "first.subject").write_text("Your offer")
    (step / "first.html").write_text(html)
    (step / "first.txt").write_text("Plain")
    return folder


def test_the_renderer_is_the_immutable_sandbox_with_autoescape(tmp_path: Path) -> None:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    renderer = Renderer(templates(tmp_path, "{{ user.first_name }}"))
    assert isinstance(renderer.env, ImmutableSandboxedEnvironment)
    context = {**CONTEXT, "user": {"first_name": "<b>Ada</b>"}}
    assert renderer.render("t_promo", "first", context).html == "&lt;b&gt;Ada&lt;/b&gt;"


@pytest.mark.parametrize("html", ESCAPES.values(), ids=ESCAPES.keys())
def test_an_escape_attempt_fails_to_render_and_the_error_leaks_nothing(
    tmp_path: Path, html: str
) -> None:
    renderer = Renderer(templates(tmp_path, html))
    with pytest.raises(TemplateRenderError) as refused:
        renderer.render("t_promo", "first", {**CONTEXT, "user": dict(CONTEXT["user"])})
    message = str(refused.value)
    assert message.startswith("templates/t_promo/first: ")
    assert not any(leak in message for leak in LEAKS), message
    assert "ada@example.test" not in message


async def test_a_journey_with_a_hostile_template_sends_nothing_and_goes_on(
    stack_for, store, tmp_path: Path
) -> None:
    """On the real worker: each payload is a skipped send (template_error), never an email and
    never an activity stuck retrying."""
    folder = templates(tmp_path, "")
    sending = SendingActivities(
        store,
        Renderer(folder),
        policy=DeliveryPolicy(quiet_hours=None, frequency_cap=100, secret_key="s"),
    )
    stack = await stack_for(Promo, sending=sending)
    for name, html in ESCAPES.items():
        (folder / "t_promo" / "first.html").write_text(html)  # auto_reload picks it up
        user = stack.user(name, first_name="Ada")
        await stack.track("Promo Requested", user, {"product": "lamp"})
        await stack.advance("t_promo", user, timedelta(seconds=1))
        assert stack.outbox(user) == [], name
        [run] = stack.runs(user)
        [first] = [s for s in stack.store.steps(run.run_id) if s.name == "first"]
        assert (first.status, first.detail is not None) == ("failed", True), name
        state = await stack.state("t_promo", user)
        assert state.step != "first" and state.outcome is None, name  # waiting for "second"
    profile = stack.store.get_profile(user)
    assert profile is not None and profile.email == f"{user}@example.test"  # nothing mutated


async def test_user_data_that_looks_like_a_template_is_printed_not_run(
    stack_for, store, tmp_path: Path
) -> None:
    """The real injection route: a trait or event property is data, never template source."""
    folder = templates(tmp_path, "Hi {{ user.first_name }}, {{ event.product }}")
    (folder / "t_promo" / "first.txt").write_text("Hi {{ user.first_name }}, {{ event.product }}")
    sending = SendingActivities(
        store,
        Renderer(folder),
        policy=DeliveryPolicy(quiet_hours=None, frequency_cap=100, secret_key="s"),
    )
    stack = await stack_for(Promo, sending=sending)
    name = "{{ cycler.__init__.__globals__.os.popen('id').read() }}"
    user = stack.user(first_name=name)
    await stack.track("Promo Requested", user, {"product": "{% for x in range(3) %}x{% endfor %}"})
    await stack.advance("t_promo", user, timedelta(seconds=1))
    [sent] = stack.outbox(user)
    assert sent.body_text == f"Hi {name}, {{% for x in range(3) %}}x{{% endfor %}}"
    assert "&#39;id&#39;" in (sent.body_html or "")  # printed, escaped, not evaluated
