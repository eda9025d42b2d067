"""Sending one journey step's message: checked, rendered, delivered once, recorded.

Before every send, in order: the journey's kill switch ("paused"), an address ("no_address"),
an email address that is exactly one mailbox ("invalid_address": a profile written before the
API checked addresses, or by another writer, may hold "v@x.com, a@evil.com", which a provider
would read as two recipients), consent ("unsubscribed", "no_consent"), quiet hours (answered
"deferred": the journey waits on a durable timer and asks again), the frequency cap across all
journeys ("frequency_cap", or "frequency_cap_lower_priority" when the last messages the cap allows
are kept for a waiting send of a journey with a higher `priority`), the journey's `send_rate`
(answered "deferred" until the send's slot: activities/throttle.py), and the templates
("template_error"). Each skip is recorded with its reason.

Exactly once in effect: the message log row (unique per journey run and step) is claimed as
"sending" before the provider is called and set to "sent" after. A retry that finds "sent"
reports a duplicate. One that finds "sending" means a worker died mid-call: the provider may
or may not have the message, so it is resent only to a provider that dedupes on our key, and
otherwise marked "unknown", never sent twice. A provider's "try later" (429, 5xx, refused
connection) removes the claim and retries with backoff, honouring Retry-After; a permanent
refusal (bad address, bad key) is recorded as failed and the journey carries on.

The `audience` channel updates the user's member in a Mailchimp audience instead of sending
(activities/audiences.py): it needs the email address and, for a marketing step, consent, as
an email does; quiet hours and templates do not apply (nothing is rendered).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.addresses import email_address
from activities.analytics import UserActivity
from activities.consent import ConsentMode, consent
from activities.erasure import address_suppressed
from activities.metrics import count_send
from activities.phones import PHONE_TRAITS, phone_hash, profile_phone
from activities.store import JourneyRun, JourneyStepRow, OutboxMessage, ProfileRow, Store
from activities.suppression import QuietHours
from activities.templates import Renderer, TemplateRenderError
from activities.throttle import QUIET_HOURS, Throttle, declared, outranked
from activities.tracking import TrackedMessage, track_email
from activities.unsubscribe import unsubscribe_url
from workflows.models import Channel, SendRequest, SendResult

log = logging.getLogger("journeys.sending")


@dataclass
class DeliveryPolicy:
    """The rules every send follows; from settings in the worker, set directly in tests."""

    from_email: str = "journeys@example.com"
    from_name: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    secret_key: str = "dev-only-secret"
    frequency_cap: int = 3
    """Marketing messages per user per window, on each of the email and in-app channels."""
    channel_caps: dict[str, int] = field(default_factory=dict)
    """Per-channel overrides, e.g. {"in_app": 5}; the webhook channel is uncapped unless set."""
    frequency_window: timedelta = timedelta(days=7)
    quiet_hours: QuietHours | None = field(default_factory=lambda: QuietHours.parse("21:00-08:00"))
    default_timezone: str = "UTC"
    company: dict[str, str] = field(default_factory=lambda: {"company_name": "journeys"})
    track_clicks: bool = False
    track_opens: bool = False
    """Email links through the signed redirect, and the open pixel (activities/tracking.py);
    the worker turns both on (JOURNEYS_TRACK_CLICKS, JOURNEYS_TRACK_OPENS)."""
    consent: ConsentMode = "opt_out"
    """"opt_in": marketing sends need explicit consent per channel (activities/consent.py)."""
    sms_region: str = "US"
    """How a phone trait without a country code is read (JOURNEYS_SMS_DEFAULT_REGION)."""
    sms_frequency_cap: int = 2
    """Marketing texts per user per window: fewer than emails, as texts interrupt."""

    def cap(self, channel: str) -> int | None:
        if channel in self.channel_caps:
            return self.channel_caps[channel]
        if channel == "sms":
            return self.sms_frequency_cap
        return self.frequency_cap if channel in ("email", "in_app", "push") else None


class SendingActivities:
    """The send activity, with what it needs: store, templates, provider, policy."""

    def __init__(
        self,
        store: Store,
        renderer: Renderer | None = None,
        provider: Any | None = None,
        policy: DeliveryPolicy | None = None,
        webhook: Any | None = None,
        audience: Any | None = None,
        sms: Any | None = None,
        push: Any | None = None,
    ) -> None:
        self.store = store
        self.renderer = renderer
        self.provider = provider  # None: the local outbox is the delivery
        self.webhook = webhook
        self.audience = audience  # a MailchimpAudience: the `audience` channel
        self.sms = sms  # a TwilioSMS (activities/providers/twilio.py): the `sms` channel
        self.push = push  # an FcmPush (activities/providers/fcm.py): the `push` channel
        self.policy = policy or DeliveryPolicy()
        self.throttle = Throttle(store)

    @activity.defn(name="send_message")
    def send_message(self, request: SendRequest) -> SendResult:
        """Check, render and deliver one message once; see the module docstring for the order."""
        result = self._send(request)
        count_send(request, result)  # the worker's metrics: sent, skipped, failed, deferred
        return result

    def _send(self, request: SendRequest, tried: dict[str, str] | None = None) -> SendResult:
        """`tried`: channels of a choice already passed over at delivery (every device of a
        push turned out unregistered), with their reasons."""
        existing = self._find(request.idempotency_key)
        if existing is not None:
            return self._resume(request, existing)
        if self.store.is_paused(request.journey):
            return self._skip(request, "paused")
        if request.fresh_for is not None and activity.in_activity():
            info = activity.info()
            late = info.current_attempt_scheduled_time - info.scheduled_time
            if late > request.fresh_for:  # late is worse than never (a two-day-old cart reminder)
                log.warning("not sent, stale: %s still failing after %s", request.template, late)
                return self._skip(request, "stale")
        profile = self.store.get_profile(request.user_id)
        traits = dict(profile.traits) if profile else {}
        # Only consent reads them, and only a marketing send asks for consent.
        subscriptions = (
            self.store.channel_subscriptions(request.user_id) if request.marketing else {}
        )
        passed_over: dict[str, str] = dict(tried or {})
        reach: Reach | None = None
        for channel in request.channels or [request.channel]:
            found = self._reach(channel, request, profile, traits, subscriptions)
            if found.reason is None:
                reach = found
                break
            passed_over[channel] = found.reason
        if reach is None:  # no channel will do: the last one's reason, all of them recorded
            reason = list(passed_over.values())[-1]
            detail = _passed_over(passed_over) if len(passed_over) > 1 else None
            return self._skip(request, reason, detail, passed_over=passed_over)
        if reach.channel != request.channel:
            request = request.model_copy(update={"channel": reach.channel})
        recipient = reach.recipient or request.user_id
        if request.marketing and request.channel in QUIET_CHANNELS:
            quiet = self.policy.quiet_hours
            if quiet is not None:
                until = quiet.ends_after(
                    request.at, traits.get("timezone"), self.policy.default_timezone
                )
                if until is not None:
                    _, priority = declared(request.journey)  # pending, for the priority rule
                    self.throttle.wait(request, until, QUIET_HOURS, priority)
                    return _deferred(request, "quiet_hours", until, passed_over)
        rate, priority = declared(request.journey)
        cap = self.policy.cap(request.channel)
        if request.marketing and cap is not None:
            since = request.at - self.policy.frequency_window
            sent = self.store.marketing_sent_since(request.user_id, since, request.channel)
            if sent >= cap:
                return self._skip(request, "frequency_cap", passed_over=passed_over)
            if outranked(priority):  # the cap's last places go to waiting sends that outrank it
                window = self.policy.frequency_window
                if sent + self.throttle.higher_pending(request, priority, window) >= cap:
                    return self._skip(
                        request, "frequency_cap_lower_priority", passed_over=passed_over
                    )
        if rate is None:
            self.throttle.settle(request)  # it may have waited for quiet hours
        elif (slot := self.throttle.turn(request, rate, priority)) is not None:
            return _deferred(request, "throttled", slot, passed_over)
        context = self.context_for(request, traits, profile)
        subject = html = text = None
        if self.renderer is not None and request.channel not in ("webhook", "audience"):
            try:
                rendered = self.renderer.render_for(
                    request.channel,
                    request.journey,
                    request.template,
                    context,
                    variant=request.variant,
                )
            except TemplateRenderError as err:
                log.error("not sent: %s", err)
                return self._skip(
                    request, "template_error", str(err), status="failed", passed_over=passed_over
                )
            subject, html, text = rendered.subject or None, rendered.html or None, rendered.text
        if html and request.channel == "email":  # clicks and opens; never the unsubscribe link
            html = self._tracked(request, html, context["unsubscribe_url"])
        message = OutboxMessage(
            idempotency_key=request.idempotency_key,
            run_id=request.run_id,
            journey=request.journey,
            user_id=request.user_id,
            template=request.template,
            channel=request.channel,
            marketing=request.marketing,
            recipient=recipient,
            subject=subject,
            body_html=html,
            body_text=text,
            context=request.context,
            journey_time=request.at,
            variant=request.variant,
            send_hour=request.send_hour,
            timing=request.timing,
            passed_over=_passed_over(passed_over) or None,
        )
        transport = self._transport(request)
        if transport is None:  # the outbox or the in-app inbox: this row is the delivery
            message.provider = "in_app" if request.channel == "in_app" else "outbox"
            return self._chosen(self._commit_sent(request, message), request, passed_over)
        message.status, message.provider = "sending", transport.name
        if not self.store.insert_once(message):  # a concurrent attempt claimed it first
            claimed = self._find(request.idempotency_key)
            return SendResult(status="duplicate", message_id=str(claimed.id) if claimed else None)
        choice = request.channels or []
        rest = choice[choice.index(request.channel) + 1 :] if request.channel in choice else []
        try:
            result = self._deliver(
                request, message, transport, context, reach.devices, fall_through=bool(rest)
            )
        except _NoDeviceLeft:  # every device FCM knew is gone: the choice goes on
            return self._send(
                request.model_copy(update={"channel": rest[0], "channels": rest}),
                tried={**passed_over, "push": "no_device"},
            )
        return self._chosen(result, request, passed_over)

    @staticmethod
    def _chosen(result: SendResult, request: SendRequest, passed: dict[str, str]) -> SendResult:
        return result.model_copy(update={"channel": request.channel, "passed_over": passed})

    def _reach(
        self,
        channel: Channel,
        request: SendRequest,
        profile: ProfileRow | None,
        traits: dict[str, Any],
        subscriptions: dict[tuple[str, str], bool],
    ) -> Reach:
        """Whether the user can get this message on `channel` now: the address (email, phone,
        devices) and, for marketing, consent and the topic; else the reason it cannot."""
        recipient = self._recipient(channel, request.user_id, profile)
        devices: list[str] = []
        if channel in BY_EMAIL:
            if recipient is None:
                return Reach(channel, None, "no_address")
            if email_address(recipient) is None:
                log.warning(
                    "not sent: the profile's email is not one address (%s)", request.template
                )
                return Reach(channel, None, "invalid_address")
        elif channel == "sms":
            if not any(traits.get(key) not in (None, "") for key in PHONE_TRAITS):
                return Reach(channel, None, "no_phone")
            recipient = profile_phone(traits, self.policy.sms_region)
            if recipient is None:
                return Reach(channel, None, "invalid_phone")
            if self.store.sms_opted_out(phone_hash(self.policy.secret_key, recipient)):
                return Reach(channel, None, "unsubscribed")  # texted STOP: the carrier refuses
        elif channel == "push":
            devices = [device.token for device in self.store.devices_of(request.user_id)]
            if not devices:
                return Reach(channel, None, "no_device")
        if request.marketing:
            reason = consent(
                channel,
                topic=request.topic,
                traits=traits,
                subscriptions=subscriptions,
                email_unsubscribed=profile is not None
                and profile.email_unsubscribed_at is not None,
                mode=self.policy.consent,
            )
            erased = (  # an erased user unsubscribed from this address
                not reason
                and channel in BY_EMAIL
                and recipient is not None
                and address_suppressed(self.store, self.policy.secret_key, recipient)
            )
            reason = "unsubscribed" if erased else reason
            if reason:
                return Reach(channel, None, reason)
        if request.channels and channel in ("sms", "push") and self._transport_for(channel) is None:
            return Reach(channel, None, "not_configured")  # a choice goes on to the next one
        return Reach(channel, recipient, None, devices)

    def _tracked(self, request: SendRequest, html: str, unsubscribe: str) -> str:
        policy = self.policy
        if not (policy.track_clicks or policy.track_opens):
            return html
        message = TrackedMessage(
            request.run_id, request.seq, request.journey, request.template, request.variant
        )
        return track_email(
            html,
            message=message,
            public_url=policy.public_url,
            secret=policy.secret_key,
            clicks=policy.track_clicks,
            opens=policy.track_opens,
            keep=frozenset({unsubscribe}),
        )

    # Delivery through a provider ---------------------------------------------------------

    def _deliver(
        self,
        request: SendRequest,
        message: OutboxMessage,
        transport: Any,
        context: dict[str, Any],
        devices: list[str] | None = None,
        fall_through: bool = False,
    ) -> SendResult:
        from activities.providers import (
            AmbiguousProviderError,
            OutgoingMessage,
            PermanentProviderError,
            RetryableProviderError,
        )

        headers: dict[str, str] = {}
        if request.marketing and request.channel == "email":
            headers["List-Unsubscribe"] = f"<{context['unsubscribe_url']}>"
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        outgoing = OutgoingMessage(
            to=message.recipient,
            from_email=self.policy.from_email,
            from_name=self.policy.from_name,
            subject=message.subject or request.template,
            html=message.body_html or "",
            text=message.body_text or "",
            headers=headers,
            idempotency_key=request.idempotency_key,
            journey=request.journey,
            step=request.template,
            user_id=request.user_id,
            properties=_jsonable(request.context),
            devices=devices or [],
            data=_push_data(request, context) if request.channel == "push" else {},
        )
        try:
            delivery = transport.send(outgoing)
        except RetryableProviderError as err:
            self._release(message)
            raise ApplicationError(
                f"{transport.name} asked to retry later: {err.reason}",
                type="ProviderRetry",
                next_retry_delay=timedelta(seconds=err.retry_after) if err.retry_after else None,
            ) from err
        except AmbiguousProviderError as err:
            if transport.idempotent:  # the provider dedupes on our key: asking again is safe
                raise ApplicationError(
                    f"{transport.name}: {err.reason}", type="ProviderUnconfirmed"
                ) from err
            # It may have gone out; sending again could deliver twice. Record, never resend.
            self._finish(message, "unknown", error=err.reason)
            self._count_sent(request, status="unknown")
            return SendResult(status="sent", message_id=str(message.id), reason="unconfirmed")
        except PermanentProviderError as err:
            if (
                fall_through
                and request.channel == "push"
                and not self.store.devices_of(request.user_id)
            ):  # nothing went out, and no device is left: free the row for the next channel
                self._release(message)
                raise _NoDeviceLeft from err
            self._finish(message, "failed", error=err.reason)
            if err.suppress_recipient and request.channel == "sms":  # not a mobile, or STOPped
                self.store.set_sms_opt_out(
                    phone_hash(self.policy.secret_key, message.recipient), "refused"
                )
            elif err.suppress_recipient and request.channel in BY_EMAIL:
                self.store.upsert_profile(
                    request.user_id,
                    traits={"email_suppressed": True, "suppressed_reason": err.reason},
                )
            return self._skip(request, "provider_refused", err.reason, status="failed")
        self._finish(message, "sent", provider_message_id=delivery.provider_message_id)
        self._count_sent(request)
        return SendResult(status="sent", message_id=str(message.id))

    def _resume(self, request: SendRequest, existing: OutboxMessage) -> SendResult:
        """A retry that finds the row: report the send, or settle one a dead worker left.

        The earlier attempt may have died between the row and its step (a lost connection):
        the step is recorded here if it is missing, once, as the row says it went.
        """
        status = existing.status
        if existing.channel != request.channel:  # channel choice: the one chosen then
            request = request.model_copy(update={"channel": existing.channel})
        if status == "sending":
            transport = self._transport(request)
            if transport is not None and getattr(transport, "idempotent", False):
                context = self.context_for(request, {}, self.store.get_profile(request.user_id))
                return self._deliver(request, existing, transport, context)
            # The provider may or may not have it; sending again could deliver twice.
            self._finish(existing, "unknown", error="worker stopped during the provider call")
            status = "unknown"
        if status == "failed":  # refused for good: not delivered, whatever the retry
            return self._skip(request, "provider_refused", existing.error, status="failed")
        self._count_sent(request, status=status)
        return SendResult(status="duplicate", message_id=str(existing.id))

    def _transport_for(self, channel: str) -> Any | None:
        return {"sms": self.sms, "push": self.push}.get(channel)

    def _transport(self, request: SendRequest) -> Any | None:
        if request.channel == "in_app":
            return None
        if request.channel in ("sms", "push"):
            transport = self._transport_for(request.channel)
            if transport is None:
                setting = (
                    "JOURNEYS_SMS_PROVIDER"
                    if request.channel == "sms"
                    else "JOURNEYS_PUSH_PROVIDER"
                )
                raise ApplicationError(
                    f"the {request.channel} channel needs {setting}", non_retryable=True
                )
            return transport
        if request.channel == "webhook":
            if self.webhook is None:
                raise ApplicationError(
                    "the webhook channel needs JOURNEYS_WEBHOOK_URL", non_retryable=True
                )
            return self.webhook
        if request.channel == "audience":
            if self.audience is None:
                raise ApplicationError(
                    "the audience channel needs JOURNEYS_MAILCHIMP_API_KEY and "
                    "JOURNEYS_MAILCHIMP_LIST_ID",
                    non_retryable=True,
                )
            return self.audience.for_step(marketing=request.marketing)
        return self.provider

    # Records -----------------------------------------------------------------------------

    def _commit_sent(self, request: SendRequest, message: OutboxMessage) -> SendResult:
        try:
            message_id = self.store.record_sent(message, _step(request, "sent", None))
        except IntegrityError:
            existing = self._find(request.idempotency_key)
            if existing is None:
                raise
            return SendResult(status="duplicate", message_id=str(existing.id))
        return SendResult(status="sent", message_id=str(message_id))

    def _count_sent(self, request: SendRequest, status: str = "sent") -> None:
        if not self.store.insert_once(_step(request, status, None)):
            return  # counted by an earlier attempt
        with self.store.session() as session:
            run = session.get(JourneyRun, request.run_id)
            if run is not None:
                run.messages_sent += 1
                session.add(run)
                session.commit()

    def _finish(self, message: OutboxMessage, status: str, **fields: Any) -> None:
        with self.store.session() as session:
            row = session.get(OutboxMessage, message.id)
            if row is not None:
                row.status = status
                for key, value in fields.items():
                    setattr(row, key, value)
                session.add(row)
                session.commit()

    def _release(self, message: OutboxMessage) -> None:
        """The provider refused for now: drop the claim so the retry may send."""
        with self.store.session() as session:
            row = session.get(OutboxMessage, message.id)
            if row is not None and row.status == "sending":
                session.delete(row)
                session.commit()

    def _skip(
        self,
        request: SendRequest,
        reason: str,
        detail: str | None = None,
        status: str = "skipped",
        passed_over: dict[str, str] | None = None,
    ) -> SendResult:
        self.store.insert_once(_step(request, status, detail or reason))
        self.throttle.settle(request)  # a send that waited is no longer pending
        return SendResult(
            status="failed" if status == "failed" else "skipped",
            reason=reason,
            channel=request.channel,
            passed_over=passed_over or {},
        )

    def _find(self, key: str) -> OutboxMessage | None:
        if not self.store.has_message(key):  # the usual case, answered without the ORM
            return None
        with self.store.session() as session:
            return session.exec(
                select(OutboxMessage).where(OutboxMessage.idempotency_key == key)
            ).first()

    # Context -----------------------------------------------------------------------------

    @staticmethod
    def _recipient(channel: str, user_id: str, profile: ProfileRow | None) -> str | None:
        if channel in BY_EMAIL:
            return profile.email if profile and profile.email else None
        return user_id

    def context_for(
        self, request: SendRequest, traits: dict[str, Any], profile: ProfileRow | None
    ) -> dict[str, Any]:
        """What the templates see: `user`, `event`, the journey's values, `unsubscribe_url`."""
        user = {**traits, "user_id": request.user_id}
        if profile is not None and profile.email:
            user["email"] = profile.email
        return {
            **self.policy.company,
            **self.with_catalog(request),
            "user": user,
            "event": request.event,
            "journey": request.journey,
            "step": request.template,
            "variant": request.variant,
            "activity": UserActivity(self.store, request.user_id, request.at),
            "unsubscribe_url": unsubscribe_url(
                self.policy.public_url, self.policy.secret_key, request.user_id, request.journey
            ),
        }

    def with_catalog(self, request: SendRequest) -> dict[str, Any]:
        """The journey's values, with each product in `items` (and `product`) completed from
        the shop's catalog (name, url, image, rating, reviews where the event had none) and
        `recent_buyers`: other users who bought it in the last RECENT_BUYERS_WINDOW, from the
        Order Completed events we store. The cart's own price, quantity and variant stay."""
        context = dict(request.context)
        items = context.get("items")
        lines = [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
        single = context.get("product") if isinstance(context.get("product"), dict) else None
        ids = [str(p["product_id"]) for p in [*lines, single or {}] if p.get("product_id")]
        context.setdefault("catalog", {})
        if not ids:
            return context
        catalog = self.store.products(ids)
        buyers = self.store.recent_buyers(ids, request.at - RECENT_BUYERS_WINDOW, request.user_id)

        def complete(line: dict[str, Any]) -> dict[str, Any]:
            product_id = str(line.get("product_id") or "")
            known = catalog.get(product_id)
            filled = dict(line)
            if known is not None:
                for key, value in known.model_dump(exclude={"product_id", "updated_at"}).items():
                    if value not in (None, [], "") and filled.get(key) in (None, "", []):
                        filled[key] = value
            if buyers.get(product_id):
                filled["recent_buyers"] = buyers[product_id]
            return filled

        if lines:
            context["items"] = [complete(line) for line in lines]
        if single is not None:
            context["product"] = complete(single)
        context["catalog"] = {
            product_id: known.model_dump(exclude={"updated_at"})
            for product_id, known in catalog.items()
        }
        return context


BY_EMAIL = ("email", "audience")
"""Channels that reach the user by their email address (an audience member is one)."""
QUIET_CHANNELS = ("email", "sms", "push")
"""Channels whose marketing messages wait out the user's quiet hours (an inbox message or a
webhook wakes nobody)."""


class _NoDeviceLeft(Exception):
    """A push of a channel choice found every device unregistered: nothing was delivered and
    the claim is released, so the next channel of the choice is tried."""


@dataclass(frozen=True)
class Reach:
    """How a channel reaches the user (the address, the devices), or why it cannot."""

    channel: Channel
    recipient: str | None
    reason: str | None
    devices: list[str] = field(default_factory=list)


def _passed_over(passed: dict[str, str]) -> str:
    """ "push: no_device; sms: no_consent": the channels a choice passed over, for the log."""
    return "; ".join(f"{channel}: {reason}" for channel, reason in passed.items())[:255]


def _push_data(request: SendRequest, context: dict[str, Any]) -> dict[str, str]:
    """A push notification's data payload: which journey and step, and the `url` (or `link`)
    the app should open, when the step passes one."""
    data = {"journey": request.journey, "step": request.template}
    for key in ("url", "link"):
        if isinstance(context.get(key), str):
            data["url"] = context[key]
            break
    return data


RECENT_BUYERS_WINDOW = timedelta(days=7)
"""Seed 003's "number of other customers who bought it recently": the last 7 days."""


def _deferred(
    request: SendRequest, reason: str, retry_at: datetime, passed_over: dict[str, str]
) -> SendResult:
    """Not yet: the engine waits on a durable timer until `retry_at` (quiet hours' end, the send
    rate's slot) and asks again, choosing the channel anew."""
    return SendResult(
        status="deferred",
        reason=reason,
        retry_at=retry_at,
        channel=request.channel,
        passed_over=passed_over,
    )


def _step(request: SendRequest, status: str, detail: str | None) -> JourneyStepRow:
    return JourneyStepRow(
        run_id=request.run_id,
        seq=request.seq,
        kind="send",
        name=request.template,
        status=status,
        at=request.at,
        detail=detail,
    )


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    import json

    plain: dict[str, Any] = json.loads(json.dumps(value, default=str))
    return plain
