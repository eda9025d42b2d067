"""The pages a person opens (/dashboard, /outbox): signed in once, never by a key in the address.

Over real HTTP against uvicorn (and, for the cookie and the outbox's previews, real Chromium):
`?key=` is never accepted and is dropped from the address; the key goes once into a form POST
or a Bearer header for a signed, expiring, HttpOnly, SameSite=Strict session cookie that opens
the pages only and dies with the key; every page is sent uncacheable, unframeable and without
a referrer, under a Content-Security-Policy.
"""

from __future__ import annotations

import time
from datetime import timedelta
from http.cookies import SimpleCookie

import httpx
import pytest
from playwright.async_api import async_playwright

from activities.unsubscribe import make_token
from starter.settings import signing_key
from tests.delivery.journeys import Promo
from tests.delivery.test_rules import sending
from tests.engine.sample_journeys import Cart
from tests.measurement.test_dashboard import CHROMIUM, CHROMIUM_ARGS, chromium  # noqa: F401

PAGES = ("/dashboard", "/outbox")
COOKIE = "journeys_session"


def session_cookie(answer: httpx.Response) -> SimpleCookie:
    """The Set-Cookie of an answer, parsed (attributes included)."""
    jar = SimpleCookie()
    for value in answer.headers.get_list("set-cookie"):
        jar.load(value)
    return jar


async def sign_in(api, **form: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as browser:
        return await browser.post("/signin", data={"key": api.key, **form})


def assert_page_headers(answer: httpx.Response) -> None:
    where = f"{answer.request.method} {answer.request.url.path} ({answer.status_code})"
    assert answer.headers.get("cache-control") == "no-store", where
    assert answer.headers.get("referrer-policy") == "no-referrer", where
    assert answer.headers.get("x-frame-options") == "DENY", where
    policy = answer.headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in policy, where
    assert "default-src 'none'" in policy and "script-src" not in policy, where


async def test_a_key_in_the_address_is_never_accepted_and_is_dropped_from_it(api_for):
    api = await api_for(Cart)
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as browser:
        for page in PAGES:
            answer = await browser.get(f"{page}?key={api.key}&limit=5")
            assert answer.status_code == 303, (page, answer.status_code)
            assert answer.headers["location"] == f"{page}?limit=5"
            assert api.key not in answer.text
            landed = await browser.get(answer.headers["location"])
            assert landed.status_code == 401  # the key in the address was never read
            assert 'action="/signin"' in landed.text and 'name="key"' in landed.text
            assert api.key not in landed.text
        # With a valid Bearer header too: the address loses the key before anything is shown.
        bearer = {"Authorization": f"Bearer {api.key}"}
        answer = await browser.get(f"/dashboard?key={api.key}", headers=bearer)
        assert answer.status_code == 303 and answer.headers["location"] == "/dashboard"


async def test_signing_in_once_gives_a_strict_httponly_expiring_session_for_the_pages(api_for):
    api = await api_for(Cart)
    answer = await sign_in(api, next="/dashboard?journey=t_cart")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dashboard?journey=t_cart"
    cookie = session_cookie(answer)[COOKIE]
    assert cookie["httponly"] is True and cookie["samesite"].lower() == "strict"
    assert cookie["path"] == "/" and int(cookie["max-age"]) == 12 * 3600
    assert not cookie["secure"]  # plain HTTP on loopback here; https sets Secure
    assert api.key not in cookie.value

    async with httpx.AsyncClient(
        base_url=api.url, cookies={COOKIE: cookie.value}, timeout=30
    ) as browser:
        for page in PAGES:
            assert (await browser.get(page)).status_code == 200, page
        dashboard = (await browser.get("/dashboard")).text
        assert 'href="/outbox"' in dashboard
        assert "key=" not in dashboard and api.key not in dashboard  # its links carry no key
        assert 'action="/signout"' in dashboard

    # A Bearer header signs in too (no form), and the wrong key is a 401 with no cookie.
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as browser:
        bearer = await browser.post("/signin", headers={"Authorization": f"Bearer {api.key}"})
        assert bearer.status_code == 303 and COOKIE in session_cookie(bearer)
        wrong = await browser.post("/signin", data={"key": "not-the-api-key"})
        assert wrong.status_code == 401 and COOKIE not in session_cookie(wrong)
        assert "not-the-api-key" not in wrong.text and api.key not in wrong.text


async def test_the_session_opens_the_pages_only_and_not_once_expired_altered_or_rekeyed(api_for):
    from starter.browser_auth import make_session

    api = await api_for(Cart)
    cookie = session_cookie(await sign_in(api))[COOKIE].value
    async with httpx.AsyncClient(base_url=api.url, cookies={COOKIE: cookie}, timeout=30) as http:
        assert (await http.get("/dashboard")).status_code == 200
        # The cookie is for pages: the JSON API and metrics still want the Bearer key.
        assert (await http.get("/v1/users/u/messages")).status_code == 401
        event = {"userId": "u", "event": "Page Viewed"}
        assert (await http.post("/v1/track", json=event)).status_code == 401
        assert (await http.get("/metrics")).status_code == 401
        # Signing out forgets it.
        out = await http.post("/signout")
        assert out.status_code == 303 and session_cookie(out)[COOKIE]["max-age"] == "0"
        http.cookies.clear()
        assert (await http.get("/dashboard")).status_code == 401

    expired = make_session(api.key, now=time.time() - timedelta(hours=13).total_seconds())
    stamp, nonce, signature = cookie.split(".")
    altered = [
        f"{int(stamp) + 86_400}.{nonce}.{signature}",  # a later expiry under the old signature
        f"{stamp}.{nonce}x.{signature}",
        f"{stamp}.{nonce}.{signature[:-2]}",
        f"{stamp}.{nonce}",
        api.key,
    ]
    other = await api_for(Cart)  # the same server with another JOURNEYS_API_KEY
    for url, value in [(api.url, expired), *((api.url, v) for v in altered), (other.url, cookie)]:
        async with httpx.AsyncClient(base_url=url, cookies={COOKIE: value}, timeout=30) as http:
            assert (await http.get("/dashboard")).status_code == 401, value


async def test_sign_in_only_sends_a_browser_back_to_this_site(api_for):
    api = await api_for(Cart)
    for target, landing in [
        ("//evil.example/dashboard", "/dashboard"),
        ("https://evil.example/", "/dashboard"),
        ("/\\evil.example", "/dashboard"),
        ("javascript:alert(1)", "/dashboard"),
        ("/outbox?key=leaked&limit=3", "/outbox?limit=3"),
        ("/outbox", "/outbox"),
    ]:
        answer = await sign_in(api, next=target)
        assert answer.status_code == 303 and answer.headers["location"] == landing, target


async def test_a_sign_in_form_over_16_kib_is_refused_naming_its_own_limit(api_for):
    """The form is read up to 16 KiB, not the API's 1 MiB, and the 413 says which."""
    api = await api_for(Cart)
    answer = await sign_in(api, next="/" + "a" * 20_000)
    assert answer.status_code == 413
    assert answer.json() == {"detail": "body over 16384 bytes"}
    assert "set-cookie" not in answer.headers


async def test_html_pages_are_uncacheable_unframeable_and_send_no_referrer(api_for):
    api = await api_for(Cart)
    cookie = session_cookie(await sign_in(api))[COOKIE].value
    link = make_token(signing_key(api.settings), "u-headers", "t_cart")
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as anonymous:
        answers = [
            await anonymous.get("/signin"),
            await anonymous.get("/dashboard"),  # 401, the sign-in form
            await anonymous.get("/outbox"),
            await anonymous.get(f"/outbox?key={api.key}"),  # 303
            await anonymous.post("/signin", data={"key": "wrong"}),  # 401
            await anonymous.post("/signin", data={"key": api.key}),  # 303 with the cookie
            await anonymous.get(f"/u/{link}"),  # the unsubscribe page
            await anonymous.get("/u/not-a-token"),  # 400 page
        ]
    async with httpx.AsyncClient(base_url=api.url, cookies={COOKIE: cookie}, timeout=30) as http:
        answers += [await http.get("/dashboard"), await http.get("/outbox")]
    assert [a.status_code for a in answers] == [200, 401, 401, 303, 401, 303, 200, 400, 200, 200]
    for answer in answers:
        assert_page_headers(answer)
    # FastAPI's docs load Swagger UI from a CDN: not our CSP, but never framed either.
    docs = await api.http.get("/docs")
    assert docs.headers["x-frame-options"] == "DENY"
    assert docs.headers["content-security-policy"] == "frame-ancestors 'none'"


@pytest.mark.usefixtures("chromium")  # skipped without Chromium, failed in CI
async def test_chromium_signs_in_once_and_reads_the_outbox_under_the_policy(api_for, store):
    api = await api_for(Promo, sending=sending(store))  # rendered emails, HTML and text
    user = api.stack.user(first_name="Ada")
    await api.stack.track("Promo Requested", user, {"product": "chair"})
    await api.stack.advance("t_promo", user, timedelta(seconds=1))
    [sent] = api.stack.outbox(user)
    assert sent.body_html

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context()
            tab = await context.new_page()
            violations: list[str] = []
            tab.on(
                "console",
                lambda m: violations.append(m.text) if "Content Security" in m.text else None,
            )
            first = await tab.goto(f"{api.url}/outbox?key={api.key}")
            assert first is not None and first.status == 401
            assert tab.url == f"{api.url}/outbox"  # the key left the address at once
            await tab.fill("#key", api.key)
            async with tab.expect_navigation():
                await tab.click("button[type=submit]")
            assert tab.url == f"{api.url}/outbox"
            assert await tab.locator(f"text={user}@example.test").count() == 1

            [cookie] = [c for c in await context.cookies() if c["name"] == COOKIE]
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            assert api.key not in cookie["value"]

            # The email's preview, a sandboxed srcdoc frame, renders under the inherited policy.
            await tab.click("summary")
            preview = tab.frame_locator("iframe").locator("body")
            assert "Ada" in await preview.inner_text()
            assert violations == []

            history = await tab.evaluate("() => [document.referrer, location.href]")
            assert all(api.key not in entry for entry in history)
            await context.close()
        finally:
            await browser.close()


@pytest.mark.parametrize("page", PAGES)
async def test_scripts_still_read_the_pages_with_a_bearer_header(api_for, page):
    api = await api_for(Cart)
    answer = await api.http.get(page)  # api.http sends Authorization: Bearer <key>
    assert answer.status_code == 200
    assert_page_headers(answer)
