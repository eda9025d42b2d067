"""`journeys send-test JOURNEY STEP --to ADDRESS [--user ID] [--variant V]`: one step's email,
rendered as the send activity renders it, sent through the configured provider to a tester.

With `--user`, the templates see that user's real profile and activity and their last trigger
event (as `journeys preview` does); without, the journey's `preview_context` and a stand-in
user whose address is the tester's. `--variant` renders an A/B/n variant's templates
(`<step>.<variant>.subject` where it exists). The subject is prefixed "[TEST]" and the message
carries `X-Journeys-Test: true`.

A test send is nobody's journey send: nothing is written (no message log row, no step, no run),
so the report, the frequency cap, the send rates and the user's history never see it; the
recipient's consent is not asked (the tester asked for it). Its unsubscribe link points at the
unsubscribe page but is signed with no real key, so clicking it unsubscribes nobody.
"""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from starter.settings import Settings

SUBJECT_PREFIX = "[TEST] "
TEST_USER = "send-test"
"""The stand-in user ID without `--user` (and the one the inert unsubscribe link names)."""
INERT_KEY = "send-test: links signed with this are refused"
"""Not the deployment's key: the API refuses the test's unsubscribe link (a tester clicking it
must not unsubscribe the real user whose profile rendered it)."""


def send_test(
    settings: Settings,
    journey_name: str,
    step: str,
    to: str,
    user_id: str | None = None,
    variant: str | None = None,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Render and send; 0 when the provider took it, 1 when it could not go, 2 on bad input."""
    out, err = out or sys.stdout, err or sys.stderr
    from activities.addresses import email_address
    from activities.providers import OutgoingMessage, ProviderError, create_provider
    from activities.sending import SendingActivities
    from activities.store import Store
    from activities.templates import Renderer, TemplateRenderError
    from activities.unsubscribe import unsubscribe_url
    from worker import delivery_policy, provider_config
    from workflows import registry
    from workflows.errors import JourneyError
    from workflows.models import SendRequest

    address = email_address(to)
    if address is None:
        print(f"error: --to must be one email address, got {to!r}", file=err)
        return 2
    try:
        registry.load_modules(settings.journey_modules)
        journey = registry.get(journey_name)
    except JourneyError as error:
        print(f"error: {error}", file=err)
        return 2
    policy = delivery_policy(settings)
    store = Store(settings.database_url)
    store.migrate()
    try:
        profile = store.get_profile(user_id) if user_id is not None else None
        if user_id is not None and profile is None:
            print(f"error: no profile for user {user_id!r}", file=err)
            return 2
        event: dict[str, Any] = {}
        if user_id is not None:
            for name in sorted(journey.trigger.events if journey.trigger else ()):
                summary = store.event_summary(user_id, name)
                if summary is not None:
                    event = summary.last_properties
        renderer = Renderer(settings.template_folders())
        sending = SendingActivities(store, renderer, None, policy)
        request = SendRequest(
            idempotency_key=f"send-test/{uuid.uuid4().hex}",
            run_id=TEST_USER,
            seq=0,
            journey=journey.name,
            user_id=user_id or TEST_USER,
            template=step,
            context=journey.preview_context(event),
            at=datetime.now(UTC),
            event=event,
            variant=variant,
        )
        traits = dict(profile.traits) if profile is not None else {}
        context = sending.context_for(request, traits, profile)
        if profile is None:
            context["user"] = {"user_id": TEST_USER, "email": address}
        link = unsubscribe_url(settings.public_url, INERT_KEY, TEST_USER, journey.name)
        context["unsubscribe_url"] = link
        try:
            message = renderer.render(journey.name, step, context, variant=variant)
        except TemplateRenderError as error:
            print(f"error: {error}", file=err)
            return 1
    finally:
        store.dispose()
    subject = SUBJECT_PREFIX + message.subject
    if settings.email_provider == "outbox":
        print(
            "not sent: no email provider is configured (JOURNEYS_EMAIL_PROVIDER=outbox), and a "
            "test never goes to the outbox; here is what it would send",
            file=err,
        )
        print(f"To:      {address}\nSubject: {subject}\n\n{message.text}", file=out)
        return 1
    outgoing = OutgoingMessage(
        to=address,
        from_email=policy.from_email,
        from_name=policy.from_name,
        subject=subject,
        html=message.html,
        text=message.text,
        headers={
            "X-Journeys-Test": "true",
            "List-Unsubscribe": f"<{link}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        idempotency_key=request.idempotency_key,
        journey=journey.name,
        step=step,
        user_id=request.user_id,
        properties={"test": True},
    )
    provider = create_provider(provider_config(settings, settings.email_provider))
    try:
        delivery = provider.send(outgoing)
    except ProviderError as error:
        print(f"not sent: {provider.name} refused it ({error.reason})", file=err)
        return 1
    finally:
        provider.close()
    whose = f"user {user_id}'s profile" if user_id else "the journey's preview context"
    what = f"{journey.name} {step}" + (f" (variant {variant})" if variant else "")
    print(f"sent a test of {what} to {address} through {delivery.provider}: {subject}", file=out)
    print(f"rendered with {whose}; not recorded, counted or capped as a journey send", file=out)
    return 0
