"""/dashboard shows the programme against the global holdout first, and each journey's waits
for its send rate, in real Chromium."""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import timedelta
from io import BytesIO

import pytest
from PIL import Image
from playwright.async_api import async_playwright

from activities.store import SendWait
from tests.experiments.journeys import Recap, Receipts, Throttled
from tests.experiments.test_global_holdout import T0, cohort, run

CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
INK = (31, 41, 55)


@pytest.fixture
def chromium() -> str:
    if CHROMIUM is None:
        reason = "no `chromium` on PATH: scripts/machine-setup installs Debian's"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM


def ink_share(image: Image.Image, box: dict[str, float]) -> float:
    crop = image.crop(
        (int(box["x"]), int(box["y"]), int(box["x"] + box["width"]), int(box["y"] + box["height"]))
    ).convert("RGB")
    pixels = list(crop.getdata())
    near = sum(1 for p in pixels if sum(abs(a - b) for a, b in zip(p, INK, strict=True)) < 60)
    return near / max(1, len(pixels))


async def test_the_dashboard_shows_the_programme_first_and_the_send_rate_waits(
    api_for, store, chromium
):
    api = await api_for(Recap, Receipts, Throttled, global_holdout=0.1)
    cohort(store)
    throttled = run("t_throttled", "w1", T0 - timedelta(days=1))  # before the programme
    store.insert_once(throttled)
    store.insert_once(
        SendWait(
            key_hash=uuid.uuid4().hex, run_id=throttled.run_id, journey="t_throttled",
            template="hello", channel="email", reason="throttled", due_at=T0 + timedelta(hours=2),
            first_at=T0, throttled=1, settled_at=T0 + timedelta(hours=2),
        )
    )  # fmt: skip

    page = await api.http.get("/dashboard")
    assert page.status_code == 200
    html = page.text
    assert html.index('id="programme"') < html.index('id="lift"')

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = await browser.new_context(
            viewport={"width": 1280, "height": 900},
            extra_http_headers={"Authorization": f"Bearer {api.key}"},
        )
        tab = await context.new_page()
        await tab.goto(f"{api.url}/dashboard")
        shot = Image.open(BytesIO(await tab.screenshot(full_page=True)))

        programme = tab.locator("#programme")
        assert await programme.is_visible()
        heading = await programme.locator("h2").inner_text()
        assert "10 % held out of all of them" in heading
        figures = {}
        for group in ("treatment", "holdout"):
            row = programme.locator(f'.programme-row[data-group="{group}"]')
            figures[group] = [
                await row.locator(f".{cell}").inner_text()
                for cell in ("users", "converted", "rate", "revenue")
            ]
        assert figures == {
            "treatment": ["200", "60", "30.00%", "3.00"],
            "holdout": ["100", "20", "20.00%", "2.00"],
        }
        lift = await programme.locator(".programme-lift").inner_text()
        assert lift.startswith("lift: +10.00 pts") and "incremental revenue 200.00" in lift

        box, lift_box = await programme.bounding_box(), await tab.locator("#lift").bounding_box()
        assert box is not None and lift_box is not None and box["y"] < lift_box["y"]  # first
        assert ink_share(shot, box) > 0.003  # the screenshot shows its text, not a blank box

        recap = tab.locator("#journey-t_recap .globally-held-out")
        assert (await recap.inner_text()).startswith("100 globally held-out entries")
        waits = await tab.locator("#journey-t_throttled .throttle").inner_text()
        assert waits == "send rate Rate(2, per=1h): 1 sends waited for their slot, the longest 2h"
        await browser.close()
