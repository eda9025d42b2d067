"""Cart recovery (seed 003, workflow 1): remind a shopper of the cart they left behind.

Seed 003's trigger: the user "adds an item to their cart but does not complete purchase within
60 minutes". The journey waits from the first Product Added (each add or removal restarts the
clock) and enters the user only once the cart has been left alone for 60 minutes: a purchase or
an emptied cart before then means the user never entered (no group, no run, nothing in the
report). Emails go out 1 hour after the last cart change (a reminder with the items, no
discount), 24 hours after it (social proof for those products: their rating, reviews and recent
buyers when the events carry them) and 72 hours after it (a modest incentive with an expiry
date, the last touch): each timing counted from the trigger, as the seed counts them. An order
within 7 days of entry ends it and counts as recovered; the report also gives conversion within
24 hours (the seed's measurement window for cart recovery).

Suppressed when a cart email went to the user (or would have, for a held-out user) in the last
7 days, or when the cart is worth less than `minimum_cart_value` once the shopper has left it.

The cart, as senders describe it (Segment's e-commerce spec, and Shopify mapped to it):
Product Added / Product Removed change one product (`product_id` or `sku`, with its `variant`);
Checkout Started, Cart Viewed and Cart Updated carry the whole cart as `products[]` and replace
what the journey holds. Every email lists every line (name, variant, quantity, price, image when
given) and links back to the cart: the latest `cart_url`, `checkout_url` or Shopify's
`abandoned_checkout_url` any cart event carried.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from workflows import Event, Experiment, Goal, Journey, Trigger, on

SNAPSHOTS = ("Checkout Started", "Cart Viewed", "Cart Updated")
"""Events that carry the whole cart (`products[]`), replacing the items held so far."""
CART_LINKS = ("cart_url", "checkout_url", "abandoned_checkout_url")


class CartRecovery(Journey):
    name = "cart_recovery"
    goal = Goal("Order Completed", within=timedelta(days=7), early=timedelta(hours=24))
    holdout = 0.15
    reentry = timedelta(days=7)
    listens = ("Product Removed",)

    inaction_window = timedelta(minutes=60)
    social_proof_at = timedelta(hours=24)
    incentive_at = timedelta(hours=72)
    minimum_cart_value = 10.0
    """Carts worth less (sum of price x quantity, or the events' cart_value) get no emails."""
    quiet_period = timedelta(days=7)
    """No new cart journey for a user who got a cart email this recently."""
    incentive_percent = 10
    incentive_code = "COMEBACK10"
    incentive_valid_for = timedelta(days=2)

    reminder_subject = Experiment("reminder_subject", {"control": 1, "urgent": 1}, auto_winner=True)
    """Seed 001's A/B test: the reminder's subject line (reminder.urgent.subject is the
    challenger); once one converts better with the sequential test's confidence, every new
    cart gets it."""

    @classmethod
    def declare(cls) -> None:
        cls.trigger = Trigger(
            "Product Added",
            "Checkout Started",
            "Cart Updated",
            quiet_for=cls.inaction_window,
            restart_on=("Product Removed", "Cart Viewed"),
        )

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.cart_value: float | None = None
        self.cart_url: str | None = None

    @on("Product Added")
    def item_added(self, event: Event) -> None:
        if isinstance(event.properties.get("products"), list):  # a cart sent whole
            self.cart_replaced(event)
            return
        self.items[_key(event.properties)] = product(event.properties)
        self._note_cart(event)

    @on("Product Removed")
    def item_removed(self, event: Event) -> None:
        key = _key(event.properties)
        if self.items.pop(key, None) is None and "/" not in key:  # no variant named: every one
            self.items = {k: v for k, v in self.items.items() if k.split("/")[0] != key}
        self._note_cart(event)

    @on(*SNAPSHOTS)
    def cart_replaced(self, event: Event) -> None:
        products = event.properties.get("products")
        if isinstance(products, list):
            lines = [product(p) for p in products if isinstance(p, dict)]
            self.items = {_key(line): line for line in lines}
        self._note_cart(event)

    def qualifies(self) -> bool:
        """A cart emptied before it was left alone was not abandoned."""
        return bool(self.items)

    def suppress(self) -> str | None:
        last = self.last_message_at
        if last is not None and self.now() - last < self.quiet_period:
            return "cart_email_within_7_days"
        return None

    def value(self) -> float:
        """The cart's value: the latest event's cart_value if sent, else price x quantity."""
        if self.cart_value is not None:
            return self.cart_value
        total = 0.0
        for item in self.items.values():
            total += _number(item.get("price")) * (_number(item.get("quantity")) or 1.0)
        return total

    async def steps(self) -> None:
        # Entered once the cart was left alone (Trigger quiet_for); journeys entered at the
        # first add, before that, had the engine wait here as these steps once did.
        if not self.items:
            self.exit("cart_emptied")
        if self.value() < self.minimum_cart_value:
            self.exit("cart_below_minimum", suppressed=True)
        left_at = self.now() - self.inaction_window  # the last cart change
        subject = await self.variant(self.reminder_subject)
        await self.send("reminder", variant=subject, items=self.item_list(), cart_url=self.cart_url)
        await self.sleep_until(left_at + self.social_proof_at)
        await self.send("social_proof", items=self.item_list(), cart_url=self.cart_url)
        await self.sleep_until(left_at + self.incentive_at)
        expires = self.now() + self.incentive_valid_for
        await self.send(
            "incentive",
            items=self.item_list(),
            cart_url=self.cart_url,
            discount_percent=self.incentive_percent,
            discount_code=self.incentive_code,
            expires_on=expires.strftime("%B %d"),
        )

    def item_list(self) -> list[dict[str, Any]]:
        return list(self.items.values())

    def _note_cart(self, event: Event) -> None:
        """The cart's value and link, as the latest event that carried them says."""
        for key in ("cart_value", "cart_total"):
            if key in event.properties:
                self.cart_value = _number(event.properties[key])
        # A cart-level event's `url` is the cart; a product's `url` is that product's page.
        keys = (*CART_LINKS, "url") if event.name in SNAPSHOTS else CART_LINKS
        for key in keys:
            link = event.properties.get(key)
            if isinstance(link, str) and link.startswith(("https://", "http://")):
                self.cart_url = link
                break

    @classmethod
    def preview_context(cls, event: dict[str, Any]) -> dict[str, Any]:
        listed = event.get("products")
        products = listed if isinstance(listed, list) else [event]
        links = [event[k] for k in CART_LINKS if isinstance(event.get(k), str)]
        return {
            "items": [product(p) for p in products if isinstance(p, dict) and p],
            "cart_url": links[0] if links else None,
            "discount_percent": cls.incentive_percent,
            "discount_code": cls.incentive_code,
            "expires_on": "two days from the send",
        }


def product(properties: dict[str, Any]) -> dict[str, Any]:
    """One cart line as the templates read it, from Segment's product fields (or Shopify's
    names: `title`, `variant_title`, `image`): name, variant, quantity, price, image, url, and
    whatever else the sender gave (a rating, reviews), kept as sent."""
    line = dict(properties)
    line.pop("products", None)
    line["name"] = properties.get("name") or properties.get("title")
    line["variant"] = properties.get("variant") or properties.get("variant_title")
    line["image_url"] = properties.get("image_url") or properties.get("image")
    quantity = _number(properties.get("quantity"))
    line["quantity"] = int(quantity) if quantity >= 1 and quantity == int(quantity) else 1
    if "price" in properties:
        line["price"] = _number(properties["price"])
    return {key: value for key, value in line.items() if value is not None}


def _key(properties: dict[str, Any]) -> str:
    """A cart line's identity: the product (or SKU) and its variant, so two sizes are two lines."""
    item = str(properties.get("product_id") or properties.get("sku") or "item")
    variant = properties.get("variant_id") or properties.get("variant")
    return f"{item}/{variant}" if variant else item


def _number(value: Any) -> float:
    if isinstance(value, bool):
        return 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return 0.0
    return 0.0
