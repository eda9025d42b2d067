"""Browse abandonment: the same product viewed 3 times in 7 days, no order: one 5 % offer."""

from __future__ import annotations

from datetime import timedelta

from tests.journeys.conftest import DAY, HOUR, Shop
from workflows.journeys import BrowseAbandonment

MINUTE = timedelta(minutes=1)
SOFA = {"product_id": "sofa", "name": "Velvet sofa", "price": 899, "url": "https://shop.test/sofa"}
TABLE = {"product_id": "table", "name": "Walnut table", "price": 450}


async def test_the_third_view_of_one_product_enters_and_an_offer_follows_an_hour_later(shop_for):
    shop: Shop = await shop_for(BrowseAbandonment)
    user = shop.user("browse_abandonment")
    await shop.identify(user)
    await shop.track(user, "Product Viewed", SOFA)
    await shop.track(user, "Product Viewed", TABLE)
    await shop.advance("browse_abandonment", user, 2 * DAY)
    await shop.track(user, "Product Viewed", TABLE)
    await shop.track(user, "Product Viewed", SOFA)
    state = await shop.api.stack.state("browse_abandonment", user)
    assert state.step == "qualifying" and shop.api.stack.runs(user) == []  # not entered yet

    await shop.advance("browse_abandonment", user, 3 * DAY)
    await shop.track(user, "Product Viewed", SOFA)  # the sofa's third view in 5 days
    await shop.api.stack.state("browse_abandonment", user)
    [run] = shop.api.stack.runs(user)
    assert run.group == "treatment"
    await shop.advance("browse_abandonment", user, HOUR - MINUTE)
    assert shop.sent(user) == []
    await shop.advance("browse_abandonment", user, MINUTE)
    [offer] = shop.sent(user)
    assert "Velvet sofa" in (offer.subject or "") + offer.body_html
    assert "LOOKAGAIN5" in offer.body_html and "5%" in offer.body_html
    assert "Walnut table" not in offer.body_html

    await shop.track(user, "Order Completed", {"revenue": 854.05})
    result = await shop.outcome("browse_abandonment", user)
    assert result.outcome == "converted"
    assert shop.templates(user) == ["offer"]


async def test_views_spread_over_more_than_7_days_never_enter(shop_for):
    shop = await shop_for(BrowseAbandonment)
    user = shop.user("browse_abandonment")
    await shop.identify(user)
    await shop.track(user, "Product Viewed", SOFA)
    await shop.advance("browse_abandonment", user, 4 * DAY)
    await shop.track(user, "Product Viewed", SOFA)
    await shop.advance("browse_abandonment", user, 4 * DAY)  # the first view has expired
    await shop.track(user, "Product Viewed", SOFA)
    await shop.advance("browse_abandonment", user, 8 * DAY)
    result = await shop.api.stack.result("browse_abandonment", user)
    assert result.outcome == "not_entered"
    assert shop.api.stack.runs(user) == [] and shop.sent(user) == []


async def test_an_order_before_the_third_view_means_no_entry(shop_for):
    shop = await shop_for(BrowseAbandonment)
    user = shop.user("browse_abandonment")
    await shop.identify(user)
    await shop.track(user, "Product Viewed", SOFA)
    await shop.track(user, "Product Viewed", SOFA)
    await shop.track(user, "Order Completed", {"revenue": 899})
    result = await shop.api.stack.result("browse_abandonment", user)
    assert result.outcome == "not_entered"
    assert shop.api.stack.runs(user) == []


async def test_an_order_in_the_hour_after_the_third_view_stops_the_offer(shop_for):
    shop = await shop_for(BrowseAbandonment)
    user = shop.user("browse_abandonment")
    await shop.identify(user)
    for _ in range(3):
        await shop.track(user, "Product Viewed", SOFA)
    await shop.advance("browse_abandonment", user, 30 * MINUTE)
    await shop.track(user, "Order Completed", {"revenue": 899})
    result = await shop.outcome("browse_abandonment", user)
    assert result.outcome == "converted"
    assert shop.sent(user) == []
