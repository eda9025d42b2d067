"""The authoring API: a journey is one class that reads like the seed's description of it.

    class CartRecovery(Journey):
        name = "cart_recovery"
        trigger = Trigger("Product Added")
        goal = Goal("Order Completed", within=timedelta(days=7))
        holdout = 0.15
        reentry = timedelta(days=7)

        async def steps(self) -> None:
            await self.inactive_for(timedelta(minutes=60))
            await self.send("reminder", items=self.items)

Everything about *when* a journey runs sits in its declaration (trigger, goal, holdout, re-entry);
`steps` says what it does, with primitives named after the domain rather than after Temporal.
The engine (workflows/engine.py) runs it inside a Temporal workflow, so `steps` must be
deterministic: no I/O, no wall clock, no randomness; use the primitives and `self.now()`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, ClassVar, NoReturn, Protocol, TypeVar

from workflows import registry
from workflows.errors import JourneyDefinitionError
from workflows.experiments import Experiment
from workflows.models import Channel, Event, Group, Profile
from workflows.segments import Segment
from workflows.send_time import BestTime

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

ANY_EVENT = "*"
"""In a Goal: any event the user sends. Routed to a user's open run only (starter/routing.py)."""

EventPredicate = Callable[[Event], bool]
TriggerPredicate = Callable[[Event, Profile], bool]
F = TypeVar("F", bound=Callable[..., Any])


class Trigger:
    """The event(s) that start a journey, with optional tests on the event, the user and counts.

    Args:
        *events: event names, any of which starts the journey.
        where: called as `where(event, profile)`; the journey starts only when it returns True.
        nth: start only on the user's nth such event ever (the third "Invite Sent"), counted
            by the webhook's per-user event summaries.
        times, same, within: start once `times` such events arrived within `within`, all with
            the same value of the property `same` if given ("the same product viewed 3 times
            in 7 days"). The journey waits for that, counting in its workflow, and is entered
            (group, entry time, attribution window) only then; a goal first means no entry.
        quiet_for, restart_on: start only once the user has been quiet for `quiet_for` after
            the trigger ("adds to cart but does not buy within 60 minutes"): each trigger
            event, and each of `restart_on`, restarts that clock. The user is entered when it
            runs out; the goal first (or the journey's `qualifies()` saying no) means no entry:
            no group, no run, no re-entry window, nothing in the report.
    """

    def __init__(
        self,
        *events: str,
        where: TriggerPredicate | None = None,
        nth: int | None = None,
        times: int = 1,
        same: str | None = None,
        within: timedelta | None = None,
        quiet_for: timedelta | None = None,
        restart_on: tuple[str, ...] = (),
    ) -> None:
        if not events:
            raise JourneyDefinitionError("Trigger needs at least one event name")
        _check_names("Trigger", events)
        if quiet_for is not None and quiet_for <= timedelta(0):
            raise JourneyDefinitionError("Trigger `quiet_for` must be a positive timedelta")
        if restart_on and quiet_for is None:
            raise JourneyDefinitionError("Trigger `restart_on` only applies with `quiet_for`")
        if nth is not None and nth < 1:
            raise JourneyDefinitionError("Trigger `nth` counts from 1")
        if times < 1:
            raise JourneyDefinitionError("Trigger `times` must be at least 1")
        if times > 1 and (within is None or within <= timedelta(0)):
            raise JourneyDefinitionError("Trigger `times` > 1 needs a positive `within` window")
        if nth is not None and times > 1:
            raise JourneyDefinitionError("Trigger takes `nth` or `times`, not both")
        self.events: tuple[str, ...] = events
        self.where = where
        self.nth = nth
        self.times = times
        self.same = same
        self.within = within
        self.quiet_for = quiet_for
        self.restart_on: tuple[str, ...] = tuple(restart_on)

    @property
    def qualifies_later(self) -> bool:
        """Whether the journey waits (a count, a quiet period) before entering the user."""
        return self.times > 1 or self.quiet_for is not None

    def matches(self, event: Event, profile: Profile, count: int | None = None) -> bool:
        """Whether `event` from a user with `profile` starts this journey.

        `count` is how many such events the user has sent so far, this one included; a
        trigger with `nth` matches only when it equals `nth`.
        """
        if event.name not in self.events:
            return False
        if self.nth is not None and count != self.nth:
            return False
        return self.where is None or bool(self.where(event, profile))

    def completing(self, arrived: list[tuple[datetime, Event]], now: datetime) -> Event | None:
        """The event that makes `times` matching events within `within` (same `same`), if any.

        `arrived` holds (arrival time, event) in arrival order; events older than the window
        at `now` no longer count.
        """
        counts: dict[str, int] = {}
        for at, event in arrived:
            if event.name not in self.events or (self.within and at < now - self.within):
                continue
            key = str(event.properties.get(self.same)) if self.same else ""
            counts[key] = counts.get(key, 0) + 1
            if counts[key] >= self.times:
                return event
        return None

    def __repr__(self) -> str:
        extra = ""
        if self.nth is not None:
            extra = f", nth={self.nth}"
        elif self.times > 1:
            within = human_duration(self.within)
            extra = f", times={self.times}, same={self.same!r}, within={within}"
        if self.quiet_for is not None:
            extra += f", quiet_for={human_duration(self.quiet_for)}"
        return f"Trigger({', '.join(map(repr, self.events))}{extra})"


class Goal:
    """The event(s) that mean the journey worked; arrival ends it at once.

    Args:
        *events: event names, any of which is the goal; `ANY_EVENT` ("*") is any event the
            user sends (a dormant user's return, say).
        within: the attribution window, from entry; a goal after it ends the journey
            without counting as a conversion.
        where: called as `where(event)`; only matching events count.
        early: a shorter window the report also gives conversion within (seed 003's
            measurement framework: 24 h for cart recovery, 7 d for re-engagement).
    """

    def __init__(
        self,
        *events: str,
        within: timedelta,
        where: EventPredicate | None = None,
        early: timedelta | None = None,
    ) -> None:
        if not events:
            raise JourneyDefinitionError("Goal needs at least one event name")
        _check_names("Goal", events)
        if within <= timedelta(0):
            raise JourneyDefinitionError("Goal window `within` must be positive")
        if early is not None and not timedelta(0) < early <= within:
            raise JourneyDefinitionError("Goal `early` must be positive and within `within`")
        self.events: tuple[str, ...] = events
        self.within = within
        self.where = where
        self.early = early

    def matches(self, event: Event) -> bool:
        """Whether `event` is this goal."""
        return (event.name in self.events or ANY_EVENT in self.events) and (
            self.where is None or bool(self.where(event))
        )

    def __repr__(self) -> str:
        return f"Goal({', '.join(map(repr, self.events))}, within={human_duration(self.within)})"


class Rate:
    """At most `count` sends per `per`, evenly spaced: `Rate(1000, per=timedelta(hours=1))` lets
    one send go every 3.6 s. A send beyond it waits its turn on a durable timer (no drop, no
    burst when a daily segment run releases thousands); see activities/throttle.py."""

    def __init__(self, count: int, *, per: timedelta) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise JourneyDefinitionError(f"Rate count must be a positive int, got {count!r}")
        if not isinstance(per, timedelta) or per <= timedelta(0):
            raise JourneyDefinitionError("Rate `per` must be a positive timedelta")
        self.count = count
        self.per = per

    @property
    def interval(self) -> timedelta:
        """The time between two sends' slots."""
        return self.per / self.count

    def __repr__(self) -> str:
        return f"Rate({self.count}, per={human_duration(self.per)})"


def on(*events: str) -> Callable[[F], F]:
    """Mark a method as the handler of other events that update journey state.

    The method is called as `method(self, event)` the moment an event arrives, whatever step
    the journey is in (items added to or removed from a cart, say). It must not await.
    """
    if not events:
        raise JourneyDefinitionError("@on needs at least one event name")

    def mark(fn: F) -> F:
        fn.__journey_events__ = events  # type: ignore[attr-defined]
        return fn

    return mark


class JourneyExit(Exception):
    """Raised by `Journey.exit` to leave a journey early; the engine records outcome "exited"
    (or "suppressed", when the user turned out not to be one the journey is for)."""

    def __init__(self, reason: str, suppressed: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.suppressed = suppressed


class _Runtime(Protocol):
    """What the engine gives a journey instance; see workflows/engine.py."""

    def now(self) -> datetime: ...
    async def sleep_until(self, when: datetime, step: str | None) -> None: ...
    async def wait_for(
        self,
        events: tuple[str, ...],
        timeout: timedelta,
        where: EventPredicate | None,
        step: str | None,
    ) -> Event | None: ...
    async def inactive_for(
        self, duration: timedelta, events: tuple[str, ...], step: str | None
    ) -> None: ...
    async def send(
        self,
        template: str,
        context: dict[str, Any],
        *,
        channel: Channel | tuple[Channel, ...] = "email",
        marketing: bool = True,
        fresh_for: timedelta | None = None,
        variant: str | None = None,
        at: BestTime | None = None,
    ) -> bool: ...
    async def variant(self, experiment: Experiment) -> str: ...
    @property
    def events(self) -> list[Event]: ...
    @property
    def messages_sent(self) -> int: ...


class Journey:
    """Base class of every journey. Subclass it, declare when it runs, and write `steps`.

    Class attributes:
        name: unique, lowercase with underscores; part of workflow IDs and search attributes.
        trigger: the events that start the journey for a user.
        segment: or (and) who enters on a schedule, for absence and state triggers; needs
            `reentry`, so a user who still matches tomorrow is not entered again.
        goal: the events that end it as a success, with the attribution window.
        holdout: the share of users held out (0.15 = 15 %); they get the same timers, no sends.
        reentry: refuse to start again for a user within this time of their last entry.
        freshness: a message that cannot go out within this time is skipped, not sent late.
        listens: further event names that `wait_for` or `inactive_for` use; the webhook routes
            these to running journeys. Trigger, goal and `@on` events are included already.
        send_rate: at most this many sends per period (`Rate(1000, per=timedelta(hours=1))`),
            evenly spaced; sends beyond it wait their turn. None: no limit.
        priority: which journey's message goes when the cross-journey frequency cap allows
            only one (higher first; default 0); the other is skipped,
            `frequency_cap_lower_priority`.
        global_holdout: whether the programme's global holdout (JOURNEYS_GLOBAL_HOLDOUT)
            applies; set False only on a journey that sends nothing but transactional messages.
        topic: the subscription topic its marketing messages belong to ("offers",
            "product_updates"): a recipient can leave one topic and keep the others
            (docs/channels.md). None: only "unsubscribe from everything" applies.

    Available from `steps` (and `suppress`) on: `user_id`, `event` (the entry event),
    `profile`, `group`, `entered_at`, `last_message_at` (this journey's last message to the
    user in an earlier run, sent or held out), `events` (all received), `messages_sent`, `now()`.

    Settings that others derive from (an event name the goal and the segment share, say) go in
    `declare`, which runs for every subclass, so a subclass that changes one attribute gets a
    consistent journey.
    """

    name: ClassVar[str]
    trigger: ClassVar[Trigger | None] = None
    segment: ClassVar[Segment | None] = None
    goal: ClassVar[Goal | None] = None
    holdout: ClassVar[float] = 0.0
    reentry: ClassVar[timedelta | None] = None
    freshness: ClassVar[timedelta | None] = timedelta(hours=12)
    listens: ClassVar[tuple[str, ...]] = ()
    send_rate: ClassVar[Rate | None] = None
    priority: ClassVar[int] = 0
    global_holdout: ClassVar[bool] = True
    topic: ClassVar[str | None] = None

    handlers: ClassVar[dict[str, tuple[str, ...]]] = {}
    """Event name -> names of the `@on` methods that handle it (collected per class)."""
    experiments: ClassVar[dict[str, Experiment]] = {}
    """The journey's A/B/n tests by name: every `Experiment` class attribute (collected)."""

    user_id: str
    event: Event | None
    profile: Profile
    group: Group
    entered_at: datetime
    last_message_at: datetime | None = None
    _runtime: _Runtime

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        explicit = {k: vars(cls)[k] for k in ("trigger", "goal", "segment") if k in vars(cls)}
        cls.declare()
        for key, value in explicit.items():  # what the class itself sets wins over `declare`
            setattr(cls, key, value)
        handlers: dict[str, list[str]] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                for event in getattr(value, "__journey_events__", ()):
                    names = handlers.setdefault(event, [])
                    if attr not in names:
                        names.append(attr)
        cls.handlers = {event: tuple(names) for event, names in handlers.items()}
        experiments: dict[str, Experiment] = {}
        for klass in reversed(cls.__mro__):
            for value in vars(klass).values():
                if isinstance(value, Experiment):
                    experiments[value.name] = value
        cls.experiments = experiments
        if "name" not in vars(cls) and not hasattr(cls, "name"):
            return  # an abstract base journey: nothing to register
        _validate(cls)
        registry.register(cls)

    # Declaration helpers --------------------------------------------------------------------

    @classmethod
    def declare(cls) -> None:
        """Set `trigger`, `goal` or `segment` from other class attributes (runs per subclass)."""

    @classmethod
    def events_of_interest(cls) -> frozenset[str]:
        """Every event name a running journey of this kind wants delivered."""
        names = set(cls.listens) | set(cls.handlers)
        if cls.trigger is not None:
            names |= set(cls.trigger.events) | set(cls.trigger.restart_on)
        for goal in cls.goals():
            names |= set(goal.events)
        return frozenset(names)

    @classmethod
    def goals(cls) -> list[Goal]:
        """Every goal a run may have, whatever its entry (see `goal_for`)."""
        return [cls.goal] if cls.goal is not None else []

    @classmethod
    def goal_for(cls, entry: str | None) -> Goal | None:
        """The goal of a run entered by the event named `entry` ("Segment Entered" for a
        segment run); override where entry paths differ (win-back: a cancelled customer's goal
        is a new subscription, a dormant one's is coming back)."""
        return cls.goal

    # What the author writes -----------------------------------------------------------------

    async def steps(self) -> None:
        """The journey itself: waits, sends and branches, top to bottom."""
        raise NotImplementedError(f"{type(self).__name__} must define `async def steps(self)`")

    def suppress(self) -> str | None:
        """Return a reason to not run this journey for this user, else None.

        Checked at entry (outcome "suppressed": in neither group) and again before every send,
        on a fresh profile (outcome "exited" with the reason: a flag set on day 10 stops the
        day-28 email). Held-out users are checked alike, so both groups stay comparable."""
        return None

    def qualifies(self) -> bool:
        """For a trigger with `quiet_for` or `times`: whether the user, once the trigger is
        met, is one to enter (a cart emptied while the clock ran is not). False: never
        entered. Called with the journey's `@on` state up to date; no profile yet."""
        return True

    # Primitives -----------------------------------------------------------------------------

    def now(self) -> datetime:
        """The journey's current time (durable and replay-safe; virtual under time skipping)."""
        return self._runtime.now()

    @property
    def events(self) -> list[Event]:
        """Every event this journey has received so far, in arrival order."""
        return self._runtime.events

    @property
    def messages_sent(self) -> int:
        """How many messages this journey has sent to its user."""
        return self._runtime.messages_sent

    async def sleep(self, duration: timedelta, *, step: str | None = None) -> None:
        """Wait `duration` on a durable timer (the goal still ends the journey meanwhile)."""
        await self._runtime.sleep_until(self.now() + duration, step)

    async def sleep_until(self, when: datetime, *, step: str | None = None) -> None:
        """Wait until `when` (returns at once if it has passed)."""
        await self._runtime.sleep_until(when, step)

    async def wait_for(
        self,
        *events: str,
        timeout: timedelta,
        where: EventPredicate | None = None,
        step: str | None = None,
    ) -> Event | None:
        """Wait for the first of `events` received after entry, up to `timeout`.

        Returns the event, or None on timeout. An event that arrived before this call (but
        after entry) counts and is consumed, so a fast user is never missed; each event is
        returned by at most one `wait_for`.
        """
        if not events:
            raise JourneyDefinitionError("wait_for needs at least one event name")
        undeclared = set(events) - self.events_of_interest()
        if undeclared:
            raise JourneyDefinitionError(
                f"{type(self).__name__}.wait_for({', '.join(sorted(undeclared))}): add these "
                "names to the journey's `listens` so the webhook delivers them"
            )
        return await self._runtime.wait_for(events, timeout, where, step)

    async def inactive_for(
        self,
        duration: timedelta,
        *,
        events: tuple[str, ...] | None = None,
        step: str | None = None,
    ) -> None:
        """Wait until none of `events` (default: the trigger's) has arrived for `duration`.

        Each new matching event restarts the clock (debounce); events in between are kept,
        so `@on` handlers see every one.
        """
        events = events or (self.trigger.events if self.trigger else ())
        if not events:
            raise JourneyDefinitionError("inactive_for needs `events` in a journey without trigger")
        await self._runtime.inactive_for(duration, events, step)

    async def variant(self, experiment: Experiment) -> str:
        """This user's variant of `experiment` (a class attribute), recorded with the run.

        Held-out users get one too, so both groups run the same steps; they are still sent
        nothing. With `auto_winner`, once the test has decided, every new entry gets the winner.
        """
        if type(self).experiments.get(experiment.name) is not experiment:
            raise JourneyDefinitionError(
                f"{type(self).__name__}.variant({experiment.name!r}): declare the Experiment as "
                "a class attribute of the journey, so the report and the test can find it"
            )
        return await self._runtime.variant(experiment)

    @classmethod
    def preview_context(cls, event: dict[str, Any]) -> dict[str, Any]:
        """Values `journeys preview` gives the templates beside user and event (override to
        match what `steps` passes to `send`)."""
        return {}

    async def send(
        self,
        template: str,
        *,
        channel: Channel | tuple[Channel, ...] = "email",
        marketing: bool = True,
        fresh_for: timedelta | None = None,
        variant: str | None = None,
        at: BestTime | None = None,
        **context: Any,
    ) -> bool:
        """Send the message `template` to the user, exactly once, with `context` for rendering.

        Args:
            template: the step's templates, templates/<journey>/<template>.{subject,html,txt}.
            channel: "email" (the ESP), "sms" (Twilio), "push" (FCM, to every device the user
                registered), "in_app" (the app's inbox), "webhook", or "audience" (the user's
                Mailchimp audience member: `tags`, `remove_tags`, `merge_fields`). A tuple,
                `("push", "email")`, is a choice: the first channel the user can be reached on
                and consents to; the others' reasons are recorded (docs/channels.md).
            marketing: marketing messages honour unsubscribes, quiet hours and the frequency
                cap; transactional ones (False) only the kill switch.
            fresh_for: give up if it cannot go out within this time (default `freshness`).
            variant: a variant from `self.variant(...)`: recorded on the message, and the
                template `<template>.<variant>.subject` (or .html, .txt) is used where it exists.
            at: `BestTime(within=...)`: wait for the user's most active hour first
                (workflows/send_time.py); both groups wait alike.
            context: values for the templates, beside `user`, `event` and `unsubscribe_url`.

        Returns True if it went out. A held-out user's send is recorded and skipped; so is one
        that is suppressed (the reason is recorded) or stale.
        """
        return await self._runtime.send(
            template,
            context,
            channel=channel,
            marketing=marketing,
            fresh_for=fresh_for,
            variant=variant,
            at=at,
        )

    def exit(self, reason: str, *, suppressed: bool = False) -> NoReturn:
        """Leave the journey now; recorded as outcome "exited" with `reason`.

        `suppressed=True` records outcome "suppressed" instead: the user turned out not to be
        one this journey is for (a cart under the minimum value, say), which measurement
        leaves out of both groups. Use it only before the first send, in both groups alike.
        """
        raise JourneyExit(reason, suppressed)


def _check_names(what: str, events: tuple[str, ...]) -> None:
    for name in events:
        if not isinstance(name, str) or not name.strip():
            raise JourneyDefinitionError(f"{what} event names must be non-empty strings: {name!r}")


def human_duration(duration: timedelta | None) -> str:
    """A window as people write it: 7d, 60min, 1d12h."""
    if duration is None:
        return "-"
    days, rest = duration.days, duration.seconds
    parts = [f"{days}d"] if days else []
    if rest // 3600:
        parts.append(f"{rest // 3600}h")
    if rest % 3600 // 60:
        parts.append(f"{rest % 3600 // 60}min")
    return "".join(parts) or f"{duration.total_seconds():.3g}s"


def _validate(cls: type[Journey]) -> None:
    where = f"journey class {cls.__module__}.{cls.__qualname__}"
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not _NAME.match(name):
        raise JourneyDefinitionError(
            f"{where}: `name` must be lowercase letters, digits and underscores, got {name!r}"
        )
    if cls.trigger is None and cls.segment is None:
        raise JourneyDefinitionError(
            f"{where}: declare `trigger = Trigger(...)`, `segment = Segment(...)` or both"
        )
    if cls.trigger is not None and not isinstance(cls.trigger, Trigger):
        raise JourneyDefinitionError(f"{where}: `trigger` must be a Trigger(...) or None")
    if cls.segment is not None:
        if not isinstance(cls.segment, Segment):
            raise JourneyDefinitionError(f"{where}: `segment` must be a Segment(...) or None")
        if cls.reentry is None:
            raise JourneyDefinitionError(
                f"{where}: a segment-entered journey needs `reentry`, or a user who still "
                "matches would enter again at every run"
            )
    if cls.goal is not None and not isinstance(cls.goal, Goal):
        raise JourneyDefinitionError(f"{where}: `goal` must be a Goal(...) or None")
    if not 0.0 <= float(cls.holdout) < 1.0:
        raise JourneyDefinitionError(f"{where}: `holdout` must be in [0, 1), got {cls.holdout}")
    if cls.reentry is not None and cls.reentry <= timedelta(0):
        raise JourneyDefinitionError(f"{where}: `reentry` must be a positive timedelta or None")
    if isinstance(cls.listens, str) or not isinstance(cls.listens, tuple | list):
        raise JourneyDefinitionError(
            f'{where}: `listens` must be a tuple of event names, like ("Product Removed",)'
        )
    if cls.send_rate is not None and not isinstance(cls.send_rate, Rate):
        raise JourneyDefinitionError(f"{where}: `send_rate` must be a Rate(...) or None")
    if isinstance(cls.priority, bool) or not isinstance(cls.priority, int):
        raise JourneyDefinitionError(f"{where}: `priority` must be an int, got {cls.priority!r}")
    if not isinstance(cls.global_holdout, bool):
        raise JourneyDefinitionError(f"{where}: `global_holdout` must be True or False")
    if cls.topic is not None and (not isinstance(cls.topic, str) or not _NAME.match(cls.topic)):
        raise JourneyDefinitionError(
            f"{where}: `topic` must be lowercase letters, digits and underscores, like "
            f'"product_updates", got {cls.topic!r}'
        )
    if cls.steps is Journey.steps:
        raise JourneyDefinitionError(f"{where}: define `async def steps(self) -> None`")
    for event, methods in cls.handlers.items():
        for method in methods:
            if not callable(getattr(cls, method, None)):
                raise JourneyDefinitionError(f"{where}: @on({event!r}) {method} is not callable")
    if "<locals>" in cls.__qualname__:
        raise JourneyDefinitionError(
            f"{where}: define journeys at a module's top level, where the worker can import them"
        )
