"""/dashboard: lift chart, live counts from Temporal, groups (in entries, with the early window
and time to convert), entry paths, what is in neither group, funnel and recent sends, in real
Chromium."""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from io import BytesIO
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image
from playwright.async_api import async_playwright

from activities.sending import DeliveryPolicy, SendingActivities
from activities.store import JourneyRefusal
from tests.conftest import settle
from tests.measurement.journeys import Measured
from tests.measurement.test_report import J, run_the_cohort, users_in

CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = [  # as root, on a machine with a closed network (see the env notes)
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BLUE, AMBER = (37, 99, 235), (217, 119, 6)


@pytest.fixture
def chromium() -> str:
    """Debian's Chromium: required in CI, skipped with the reason on a machine without it."""
    if CHROMIUM is None:
        reason = "no `chromium` on PATH: scripts/machine-setup installs Debian's"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture
async def dashboard(api_for, store):
    policy = DeliveryPolicy(quiet_hours=None, frequency_cap=1)
    api = await api_for(Measured, sending=SendingActivities(store, policy=policy))
    await run_the_cohort(api.stack)
    # Two more users (one per group) enter over HTTP and stay at their first wait: live.
    for group in ("treatment", "holdout"):
        [user] = users_in(api.stack, group, 1)
        answer = await api.http.post(
            "/v1/track",
            json={
                "type": "track",
                "event": "Trial Started",
                "userId": user,
                "messageId": str(uuid.uuid4()),
            },
        )
        assert answer.status_code == 200
        await settle(api.stack.handle(J, user))
    # A trigger refused inside a re-entry window (Measured has none: written as the entry would).
    now = datetime.now(UTC)
    refused = JourneyRefusal(
        run_id=uuid.uuid4().hex,
        workflow_id=f"{J}:refused",
        journey=J,
        user_id="refused",
        at=now,
        reason="reentry_window",
        entry_event="Trial Started",
        last_entered_at=now - timedelta(days=2),
    )
    assert api.stack.store.insert_once(refused)
    return api


def colour_share(image: Image.Image, box: dict[str, float], colour: tuple[int, int, int]) -> float:
    """The share of pixels in `box` within a small distance of `colour`."""
    crop = image.crop(
        (int(box["x"]), int(box["y"]), int(box["x"] + box["width"]), int(box["y"] + box["height"]))
    ).convert("RGB")
    pixels = list(crop.getdata())
    near = sum(1 for p in pixels if sum(abs(a - b) for a, b in zip(p, colour, strict=True)) < 40)
    return near / max(1, len(pixels))


async def test_the_dashboard_shows_results_live_counts_funnel_and_recent_sends(dashboard, chromium):
    api = dashboard
    page = await api.http.get("/dashboard")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    html = page.text
    assert 'class="journey-row" data-journey="t_measured"' in html
    assert "too small to tell" in html  # 7 users: the warning, not a verdict
    # Live from Temporal visibility: the open holdout user and the two new users are running.
    assert (
        '<tr class="live-step" data-step="sleep after nudge"><td>sleep after nudge</td><td>3</td>'
        in html
    )

    link = urlsplit(
        html.split('class="temporal-link" href="')[1].split('"')[0].replace("&amp;", "&")
    )
    assert link.path == "/namespaces/default/workflows"
    assert parse_qs(link.query)["query"] == [f'JourneyName="{J}"']

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = await browser.new_context(
            viewport={"width": 1280, "height": 900},
            extra_http_headers={"Authorization": f"Bearer {api.key}"},
        )
        tab = await context.new_page()
        await tab.goto(f"{api.url}/dashboard")
        shot = Image.open(BytesIO(await tab.screenshot(full_page=True)))

        for selector in ("#lift-chart", "#journeys", f"#journey-{J} .funnel", "#recent"):
            assert await tab.locator(selector).is_visible(), selector
        running = await tab.locator(f'.journey-row[data-journey="{J}"] .running').inner_text()
        assert running.strip() == "3"
        row = tab.locator(f'.journey-row[data-journey="{J}"]')
        assert await row.locator(".entries").inner_text() == "9"  # the staff account is not
        assert await row.locator(".outside").inner_text() == "2"  # it, and the refusal

        # Each group in entries, with the early window (1 day) and the median time to convert.
        section = tab.locator(f"#journey-{J}")
        assert "early window 1d" in await section.locator(".journey-head").inner_text()
        figures = {}
        for group in ("treatment", "holdout"):
            cells = section.locator(f'.group-row[data-group="{group}"]')
            assert await cells.is_visible()
            figures[group] = [
                await cells.locator(f".{name}").inner_text()
                for name in ("entries", "users", "converted", "early-converted", "early-rate")
            ]
        assert figures == {
            "treatment": ["5", "5", "2", "1", "20.00%"],
            "holdout": ["4", "4", "1", "1", "25.00%"],
        }
        median = await section.locator('.group-row[data-group="treatment"] .median').inner_text()
        assert median.startswith("19h")  # 2 h and 1 d 12 h (plus the test's real seconds)
        early = await section.locator(".early-lift").inner_text()
        assert early.startswith("lift within 1d: -5.00 pts")
        path = section.locator('.entry-path[data-entry="Trial Started"]')
        assert await path.is_visible()
        assert (await path.inner_text()).split() == [
            *("Trial", "Started", "5", "/", "4", "2", "/", "1", "40.00%", "25.00%")
        ]
        outside = await section.locator(".outside-groups").inner_text()
        assert outside == "in neither group: 1 suppressed, 1 trigger refused (reentry_window 1)"
        recent = await tab.locator(".recent-row").count()
        assert recent == 13  # every send step the cohort reached: 6 nudges, 4 reminders, ...

        # The screenshot really shows them: the interval on the chart, the funnel's bars.
        chart = await tab.locator(
            f'#lift-chart .lift-row[data-journey="{J}"] circle'
        ).bounding_box()
        assert chart is not None and colour_share(shot, chart, BLUE) > 0.3
        sent_bar = await tab.locator(
            f'#journey-{J} .funnel-step[data-step="nudge"] .bar'
        ).bounding_box()
        assert sent_bar is not None and colour_share(shot, sent_bar, BLUE) > 0.3
        skipped = await tab.locator(
            f'#journey-{J} .funnel-step[data-step="reminder"] .bar'
        ).bounding_box()
        assert skipped is not None and colour_share(shot, skipped, AMBER) > 0.3

        await context.close()
        anonymous = await browser.new_page()
        response = await anonymous.goto(f"{api.url}/dashboard")
        assert response is not None and response.status == 401
        # Signed in once with the key typed into the form (never `?key=` in the address).
        await anonymous.fill("#key", api.key)
        async with anonymous.expect_navigation():
            await anonymous.click("button[type=submit]")
        assert anonymous.url == f"{api.url}/dashboard"
        assert await anonymous.locator("#lift-chart").is_visible()
        await browser.close()


async def test_the_dashboard_filters_by_journey_and_names_unknown_ones(dashboard):
    api = dashboard
    one = await api.http.get("/dashboard", params={"journey": J})
    assert one.status_code == 200 and f'id="journey-{J}"' in one.text
    unknown = await api.http.get("/dashboard", params={"journey": "nope"})
    assert unknown.status_code == 404 and "nope" in unknown.text
    bad = await api.http.get("/dashboard", params={"since": "<script>alert(1)</script>"})
    assert bad.status_code == 400 and "<script>" not in bad.text  # echoed, but escaped
    unknown = await api.http.get("/dashboard", params={"journey": "<b>x</b>"})
    assert unknown.status_code == 404 and "<b>" not in unknown.text
