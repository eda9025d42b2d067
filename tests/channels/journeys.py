"""Journeys for the channel tests (importable: the workflow sandbox loads them)."""

from __future__ import annotations

from datetime import timedelta

from workflows import Journey, Trigger


class Offers(Journey):
    """Two offers a day apart, in the `offers` topic."""

    name = "t_offers"
    trigger = Trigger("Offer Requested")
    topic = "offers"

    async def steps(self) -> None:
        await self.send("deal", offer="10% off")
        await self.sleep(timedelta(days=1))
        await self.send("deal_again", offer="15% off")


class Updates(Journey):
    """A product update, in the `product_updates` topic."""

    name = "t_updates"
    trigger = Trigger("Update Shipped")
    topic = "product_updates"

    async def steps(self) -> None:
        await self.send("news", offer="dark mode")


class Texts(Journey):
    """A transactional code by text, then a marketing text an hour later, then another."""

    name = "t_texts"
    trigger = Trigger("Texts Requested")

    async def steps(self) -> None:
        await self.send("code", channel="sms", marketing=False, code="482913")
        await self.sleep(timedelta(hours=1))
        await self.send("promo", channel="sms", url="https://shop.example/cart")
        await self.sleep(timedelta(hours=1))
        await self.send("promo", channel="sms", url="https://shop.example/cart")
