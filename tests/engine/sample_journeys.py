"""Small journeys that exercise one engine primitive each (importable: the sandbox loads them)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from workflows import Event, Experiment, Goal, Journey, Trigger, on


class Cart(Journey):
    """The issue's bar: idle 60 min (debounced), reminder, 23 h later social proof."""

    name = "t_cart"
    trigger = Trigger("Product Added")
    goal = Goal("Order Completed", within=timedelta(days=7))
    listens = ("Product Removed",)

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    @on("Product Added")
    def added(self, event: Event) -> None:
        self.items[str(event.properties["sku"])] = dict(event.properties)

    @on("Product Removed")
    def removed(self, event: Event) -> None:
        self.items.pop(str(event.properties["sku"]), None)

    async def steps(self) -> None:
        await self.inactive_for(timedelta(minutes=60), events=("Product Added", "Product Removed"))
        if not self.items:
            self.exit("cart_emptied")
        await self.send("reminder", skus=sorted(self.items))
        await self.sleep(timedelta(hours=23))
        await self.send("social_proof", skus=sorted(self.items))


class HeldOutCart(Cart):
    """Cart with half the users held out (tests pick users by their known group)."""

    name = "t_cart_holdout"
    holdout = 0.5


class OnceAWeekCart(Cart):
    """Cart that refuses to start again for a user within 7 days of their last entry."""

    name = "t_cart_reentry"
    goal = Goal("Order Completed", within=timedelta(days=2))
    reentry = timedelta(days=7)


class Checklist(Journey):
    """wait_for: congratulate on the checklist within 2 days, else nudge."""

    name = "t_checklist"
    trigger = Trigger("Trial Started")
    listens = ("Checklist Done", "Checklist Skipped")

    async def steps(self) -> None:
        done = await self.wait_for("Checklist Done", "Checklist Skipped", timeout=timedelta(days=2))
        if done is None:
            await self.send("nudge")
        else:
            await self.send("congrats", via=done.name, tasks=done.properties.get("tasks", 0))


class TrialEnding(Journey):
    """sleep_until: a warning 3 days before the trial_end carried by the trigger event."""

    name = "t_trial_ending"
    trigger = Trigger("Trial Started")

    async def steps(self) -> None:
        assert self.event is not None
        trial_end = datetime.fromisoformat(str(self.event.properties["trial_end"]))
        await self.sleep_until(trial_end - timedelta(days=3))
        await self.send("trial_ending", trial_end=trial_end.isoformat())


def _worth_it(event: Event, profile: Any) -> bool:
    return float(event.properties.get("price", 0)) >= 10 and profile.traits.get("plan") != "vip"


class PricedCart(Journey):
    """Trigger predicate on the event and the profile; branching on profile and event."""

    name = "t_priced"
    trigger = Trigger("Product Added", where=_worth_it)

    async def steps(self) -> None:
        if self.profile.traits.get("country") == "FR":
            await self.send("rappel")
        elif self.event is not None and float(self.event.properties["price"]) > 100:
            await self.send("big_ticket")
        else:
            await self.send("reminder")


class Careful(Journey):
    """Suppression at entry on a profile trait."""

    name = "t_careful"
    trigger = Trigger("Subscription Cancelled")
    goal = Goal("Subscription Started", within=timedelta(days=90))

    def suppress(self) -> str | None:
        return "negative_support" if self.profile.traits.get("negative_support") else None

    async def steps(self) -> None:
        await self.sleep(timedelta(days=7))
        await self.send("we_miss_you")


class Welcome(Journey):
    """Send at once on entry: the event-to-first-send path."""

    name = "t_welcome"
    trigger = Trigger("Signed Up")
    goal = Goal("Activated", within=timedelta(days=3))

    async def steps(self) -> None:
        await self.send("welcome")
        await self.sleep(timedelta(days=1))
        await self.send("tip")


class ForgotListens(Journey):
    """Waits for an event it never declared in `listens`: a mistake found only at run time."""

    name = "t_forgot_listens"
    trigger = Trigger("Signed Up")

    async def steps(self) -> None:
        await self.send("welcome")
        await self.wait_for("Checklist Done", timeout=timedelta(days=2))


class Chatty(Journey):
    """A long-lived journey a very active user floods with events: its runs continue as new,
    carrying the counts its `@on` handler keeps and the steps it has done."""

    name = "t_chatty"
    trigger = Trigger("Signed Up")
    goal = Goal("Upgraded", within=timedelta(days=30))
    listens = ("Checklist Done",)
    copy = Experiment("welcome_copy", ["short", "long"])

    def __init__(self) -> None:
        self.views = 0
        self.pages: set[str] = set()
        self.last_view: datetime | None = None

    @on("Page Viewed")
    def viewed(self, event: Event) -> None:
        self.views += 1
        self.pages.add(str(event.properties["page"]))
        self.last_view = max(self.last_view or event.timestamp, event.timestamp)

    async def steps(self) -> None:
        variant = await self.variant(self.copy)
        await self.send("welcome", variant=variant, views=self.views)
        done = await self.wait_for("Checklist Done", timeout=timedelta(days=3))
        last = self.last_view.isoformat() if self.last_view else None
        template = "congrats" if done is not None else "tip"
        await self.send(
            template, variant=variant, views=self.views, pages=len(self.pages), last_view=last
        )
        await self.sleep(timedelta(days=2))
        await self.send(
            "summary", variant=variant, views=self.views, sent_before=self.messages_sent
        )


class ChattyCart(Journey):
    """A cart left alone for an hour, whose user keeps changing it while the clock runs."""

    name = "t_chatty_cart"
    trigger = Trigger("Product Added", quiet_for=timedelta(minutes=60))
    goal = Goal("Order Completed", within=timedelta(days=7))

    def __init__(self) -> None:
        self.quantities: dict[str, int] = {}

    @on("Product Added")
    def added(self, event: Event) -> None:
        sku = str(event.properties["sku"])
        self.quantities[sku] = self.quantities.get(sku, 0) + 1

    async def steps(self) -> None:
        await self.send("reminder", quantities=dict(sorted(self.quantities.items())))


class _Tally:
    """An author's own class: the engine cannot carry it to a new run."""

    def __init__(self) -> None:
        self.count = 0


class ChattyUncarriable(Journey):
    """Keeps its state in an object of its own class: it stays in one run, and still works."""

    name = "t_chatty_uncarriable"
    trigger = Trigger("Signed Up")
    listens = ("Checklist Done",)

    def __init__(self) -> None:
        self.tally = _Tally()

    @on("Page Viewed")
    def viewed(self, event: Event) -> None:
        self.tally.count += 1

    async def steps(self) -> None:
        await self.wait_for("Checklist Done", timeout=timedelta(days=3))
        await self.send("congrats", views=self.tally.count)
