"""`journeys dev` prints where to sign in, never a link with the API key in it.

A `?key=` link ends up in the terminal's scrollback, the browser's history and every log on
the way; the banner prints /signin, where the key is typed once for a session cookie. The real
`journeys dev`, as a newcomer runs it (tests/starter/test_dev.py: Temporal, worker, API).
"""

from __future__ import annotations

import re

import httpx

from tests.starter.test_dev import Dev


def test_journeys_dev_prints_the_sign_in_page_and_it_opens_the_dashboard(tmp_path):
    with Dev(tmp_path) as dev:
        api = f"http://127.0.0.1:{dev.api_port}"
        assert "key=" not in dev.output, dev.output
        assert re.search(rf"sign in\s+{re.escape(api)}/signin\b", dev.output), dev.output
        for page in ("outbox", "dashboard"):
            assert re.search(rf"{page}\s+{re.escape(api)}/{page}\s", dev.output), dev.output

        with httpx.Client(base_url=api, timeout=30) as browser:
            assert browser.get("/dashboard").status_code == 401
            form = browser.get("/signin")
            assert form.status_code == 200 and 'name="key"' in form.text
            signed_in = browser.post("/signin", data={"key": dev.key, "next": "/dashboard"})
            assert signed_in.status_code == 303
            page = browser.get(signed_in.headers["location"])
            assert page.status_code == 200 and 'data-journey="cart_recovery"' in page.text
        assert dev.stop() == 0
