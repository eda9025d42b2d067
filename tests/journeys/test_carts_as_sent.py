"""Carts as Shopify and Segment's e-commerce spec send them, read as the shopper's mailbox gets
them: the vendor's documented payload goes to the running API, journey time is skipped, and each
email is parsed from the raw bytes the SMTP server received."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from activities.providers import ProviderConfig, create_provider
from activities.sending import SendingActivities
from activities.templates import Renderer
from starter.sources import sign_shopify
from tests.conftest import NO_LIMITS
from tests.journeys.conftest import HOUR, TEMPLATES, Shop
from tests.smtp_server import Mailbox, SmtpServer
from tests.sources.payloads import load
from workflows.journeys import CartRecovery

MINUTE = timedelta(minutes=1)
SHOPIFY_SECRET = "shpss_" + "5f0c2e9a7d1b4c3e8a6f2d1b0c9e7a5f"


@pytest.fixture
def mailbox(tmp_path: Path) -> Iterator[tuple[SmtpServer, Path]]:
    spool = tmp_path / "spool"
    spool.mkdir()
    with SmtpServer(Mailbox(spool=spool)) as server:
        yield server, spool


def delivered(spool: Path) -> list[EmailMessage]:
    """Every message as the SMTP server received it, oldest first, parsed from its raw bytes."""
    return [
        message_from_bytes(path.read_bytes(), policy=policy.default)  # type: ignore[misc]
        for path in sorted(spool.glob("*.eml"))
    ]


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


async def shop_with_smtp(api_for: Any, store: Any, server: SmtpServer) -> Shop:
    provider = create_provider(
        ProviderConfig(
            provider="smtp", smtp_host="127.0.0.1", smtp_port=server.port, smtp_tls="none"
        )
    )
    sending = SendingActivities(store, Renderer(TEMPLATES), provider=provider, policy=NO_LIMITS)
    return Shop(
        await api_for(CartRecovery, sending=sending, shopify_secret=SecretStr(SHOPIFY_SECRET))
    )


def treated_customer() -> int:
    from activities.holdout import assign_group

    while True:
        customer = random.randrange(10**12, 10**13)
        if assign_group("cart_recovery", str(customer), 0.15) == "treatment":
            return customer


async def test_a_shopify_checkout_that_is_never_updated_gets_every_line_and_its_link(
    api_for, store, mailbox
):
    server, spool = mailbox
    shop = await shop_with_smtp(api_for, store, server)
    checkout = load("shopify_checkout")  # Shopify's documented checkouts/create body
    customer = treated_customer()
    checkout["customer"]["id"] = customer
    user = str(customer)
    body = json.dumps(checkout).encode()
    answer = await shop.api.http.post(
        "/v1/sources/shopify",
        content=body,
        headers={
            "X-Shopify-Topic": "checkouts/create",
            "X-Shopify-Hmac-Sha256": sign_shopify(body, SHOPIFY_SECRET),
            "X-Shopify-Webhook-Id": f"wh-{customer}",
            "Content-Type": "application/json",
        },
    )
    assert answer.status_code == 200, answer.text
    [_, track] = answer.json()["calls"]
    assert [j["journey"] for j in track["journeys"]] == ["cart_recovery"]  # it starts the journey

    link = checkout["abandoned_checkout_url"]
    await shop.advance("cart_recovery", user, 61 * MINUTE)
    await shop.advance("cart_recovery", user, 23 * HOUR)
    await shop.advance("cart_recovery", user, 48 * HOUR)
    mails = delivered(spool)
    assert [m["To"] for m in mails] == [checkout["email"]] * 3
    for mail in mails:  # reminder, social proof, incentive
        text, html = parts(mail)
        assert "Wool Cloak (Black / L), 1 x 149.00 USD" in text
        assert "Leather Gloves (Brown), 2 x 24.50 USD" in text
        assert f"Return to your cart: {link}" in text
        for shown in ("Wool Cloak", "Black / L", "149.00 USD", "Leather Gloves", "Brown"):
            assert shown in html
        assert "2 &times; 24.50 USD" in html or "2 \u00d7 24.50 USD" in html
        assert f'href="{link}"' in html
    assert "You left 2 items" in parts(mails[0])[0]


async def test_a_segment_cart_of_single_changes_and_a_whole_cart_snapshot(api_for, store, mailbox):
    server, spool = mailbox
    shop = await shop_with_smtp(api_for, store, server)
    user = shop.user("cart_recovery")
    await shop.identify(user, first_name="Ada")
    # Segment's e-commerce spec: Product Added / Removed carry one product...
    lamp = {"product_id": "507f1f77bcf86cd799439011", "sku": "G-32", "name": "Brass lamp",
            "variant": "Large", "price": 45.0, "quantity": 1, "currency": "USD",
            "url": "https://shop.example.test/p/lamp",
            "image_url": "https://shop.example.test/i/lamp.jpg"}  # fmt: skip
    chair = {"product_id": "505bd76785ebb509fc183733", "sku": "C-1", "name": "Oak chair",
             "price": 120.0, "quantity": 2, "currency": "USD"}  # fmt: skip
    await shop.track(user, "Product Added", lamp)
    await shop.track(user, "Product Added", chair)
    await shop.track(user, "Product Removed", {"product_id": chair["product_id"]})
    # ...Checkout Started carries the cart as a whole, which replaces what was held.
    sofa = {"product_id": "sofa-9", "name": "Velvet sofa", "price": 899.0, "quantity": 1}
    await shop.track(
        user,
        "Checkout Started",
        {"order_id": "50314b8e9bcf000000000000", "value": 944.0, "currency": "USD",
         "url": "https://shop.example.test/cart/abc", "products": [lamp, sofa]},
    )  # fmt: skip
    await shop.advance("cart_recovery", user, 61 * MINUTE)

    [reminder] = delivered(spool)
    text, html = parts(reminder)
    assert "Brass lamp (Large), 1 x 45.00 USD" in text and "Velvet sofa, 1 x 899.00" in text
    assert "Oak chair" not in text + html  # removed, then not in the cart that was sent whole
    assert 'src="https://shop.example.test/i/lamp.jpg"' in html
    assert 'href="https://shop.example.test/p/lamp"' in html  # a product's url: its page
    assert 'href="https://shop.example.test/cart/abc"' in html  # the cart's url: the cart

    # Order Completed as the spec sends it (`total`, no `revenue`) ends it with its revenue.
    await shop.track(user, "Order Completed", {"order_id": "o-77", "total": 944.0})
    result = await shop.api.stack.result("cart_recovery", user, timeout=10)
    assert result.outcome == "converted"
    [run] = shop.api.stack.runs(user)
    assert run.revenue == 944.0
    assert len(delivered(spool)) == 1


async def test_an_emptied_whole_cart_means_no_entry(api_for, store, mailbox):
    server, spool = mailbox
    shop = await shop_with_smtp(api_for, store, server)
    user = shop.user("cart_recovery")
    await shop.identify(user)
    await shop.track(user, "Product Added", {"product_id": "p1", "name": "Mug", "price": 12.0})
    await shop.track(user, "Cart Viewed", {"cart_id": "c-1", "products": []})
    await shop.advance("cart_recovery", user, 61 * MINUTE)
    result = await shop.api.stack.result("cart_recovery", user)
    assert (result.outcome, result.reason) == ("not_entered", "trigger_not_met")
    assert delivered(spool) == [] and shop.api.stack.runs(user) == []


async def test_social_proof_comes_from_the_catalog_and_the_shops_own_orders(
    api_for, store, mailbox
):
    server, spool = mailbox
    shop = await shop_with_smtp(api_for, store, server)
    lamp_id = f"lamp-{random.randrange(10**9)}"
    http = shop.api.http
    stored = await http.put(
        f"/v1/catalog/products/{lamp_id}",
        json={"name": "Brass lamp", "url": "https://shop.example.test/p/lamp",
              "image_url": "https://shop.example.test/i/lamp.jpg", "rating": 4.6,
              "review_count": 212, "reviews": [
                  {"author": "Mina", "rating": 5, "text": "Warm light, solid brass."}]},
    )  # fmt: skip
    assert stored.status_code == 200, stored.text
    refused = await http.put(f"/v1/catalog/products/{lamp_id}", json={"rating": 9})
    assert refused.status_code == 422 and "rating" in refused.text

    user = shop.user("cart_recovery")
    await shop.identify(user, first_name="Ada")
    # Other shoppers' orders this week (one the recipient's own, which does not count).
    for buyer in ("b1", "b2", user):
        await shop.track(
            f"{buyer}-{lamp_id}" if buyer != user else user,
            "Order Completed",
            {"order_id": f"o-{buyer}", "revenue": 45.0, "products": [{"product_id": lamp_id}]},
        )
    await shop.track(user, "Product Added", {"product_id": lamp_id, "price": 45.0})
    await shop.advance("cart_recovery", user, 61 * MINUTE)
    await shop.advance("cart_recovery", user, 23 * HOUR)

    reminder, social = delivered(spool)
    text, html = parts(social)
    assert "Brass lamp" in text  # the name the cart event did not carry
    assert "Rated 4.6 out of 5 from 212 reviews" in text
    assert "2 customers bought this recently" in text
    assert '"Warm light, solid brass." (Mina)' in text
    assert 'src="https://shop.example.test/i/lamp.jpg"' in html
    _, reminder_html = parts(reminder)
    assert "Rated" not in reminder_html  # the reminder is a reminder, no social proof


async def test_a_line_the_data_cannot_fill_is_left_out(api_for, store, mailbox):
    server, spool = mailbox
    shop = await shop_with_smtp(api_for, store, server)
    user = shop.user("cart_recovery")
    await shop.identify(user)
    await shop.track(user, "Product Added", {"product_id": f"p-{random.randrange(10**9)}",
                                             "name": "Plain mug", "price": 12.0})  # fmt: skip
    await shop.advance("cart_recovery", user, 61 * MINUTE)
    await shop.advance("cart_recovery", user, 23 * HOUR)
    _, social = delivered(spool)
    text, html = parts(social)
    assert "Plain mug, 1 x 12.00" in text
    for empty in ("Rated", "review", "bought this recently", "<img", "None", '""'):
        assert empty not in text + html


async def test_shopify_products_update_keeps_the_catalog_current(api_for, store):
    shop = await shop_with_smtp(api_for, store, SmtpServer())
    product = {  # Shopify's documented products/update body, trimmed
        "id": 788032119674292922, "title": "Example T-Shirt", "handle": "example-t-shirt",
        "body_html": None, "vendor": "Acme", "product_type": "Shirts", "status": "active",
        "variants": [{"id": 642667041472713922, "product_id": 788032119674292922,
                      "title": "Small", "price": "19.99", "sku": "example-shirt-s"},
                     {"id": 757650484644203962, "product_id": 788032119674292922,
                      "title": "Medium", "price": "17.99", "sku": "example-shirt-m"}],
        "images": [{"id": 1, "product_id": 788032119674292922, "position": 1,
                    "src": "https://cdn.shopify.com/s/files/1/example.jpg"}],
        "image": None,
    }  # fmt: skip
    body = json.dumps(product).encode()
    answer = await shop.api.http.post(
        "/v1/sources/shopify",
        content=body,
        headers={
            "X-Shopify-Topic": "products/update",
            "X-Shopify-Shop-Domain": "acme.myshopify.com",
            "X-Shopify-Hmac-Sha256": sign_shopify(body, SHOPIFY_SECRET),
            "Content-Type": "application/json",
        },
    )
    assert answer.status_code == 200, answer.text
    [entry] = store.products(["788032119674292922"]).values()
    assert (entry.name, entry.price) == ("Example T-Shirt", 17.99)
    assert entry.url == "https://acme.myshopify.com/products/example-t-shirt"
    assert entry.image_url == "https://cdn.shopify.com/s/files/1/example.jpg"
    forged = await shop.api.http.post(
        "/v1/sources/shopify",
        content=body,
        headers={"X-Shopify-Topic": "products/update", "X-Shopify-Hmac-Sha256": "AAAA",
                 "Content-Type": "application/json"},
    )  # fmt: skip
    assert forged.status_code == 401
