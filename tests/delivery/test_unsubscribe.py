"""One-click unsubscribe (RFC 8058) over real HTTP, from the link in a real rendered email."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
from pydantic import SecretStr

from tests.delivery.journeys import Promo
from tests.delivery.test_rules import SECRET, sending, steps


async def test_one_click_unsubscribe_from_the_email_stops_the_next_send(api_for, store):
    api = await api_for(Promo, sending=sending(store), secret_key=SecretStr(SECRET))
    user = api.stack.user(first_name="Ada")
    await api.stack.track("Promo Requested", user, {"product": "chair"})
    await api.stack.advance("t_promo", user, timedelta(seconds=1))
    [first] = api.stack.outbox(user)
    path = re.search(r"/u/[\w.-]+", first.body_text).group(0)

    async with httpx.AsyncClient(base_url=api.url) as mail_client:  # no API key, no cookies
        page = await mail_client.get(path)
        assert page.status_code == 200 and "<button" in page.text
        assert api.stack.store.get_profile(user).email_unsubscribed_at is None  # GET is safe

        tampered = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
        assert (
            await mail_client.post(tampered, content=b"List-Unsubscribe=One-Click")
        ).status_code == 400

        done = await mail_client.post(
            path,
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert done.status_code == 200
    profile = api.stack.store.get_profile(user)
    assert profile.email_unsubscribed_at is not None  # apart from traits: no identify undoes it
    assert profile.email_unsubscribed_from == "t_promo"
    again = await api.http.post(  # a sender's sync cannot re-subscribe them
        "/v1/identify", json={"userId": user, "traits": {"unsubscribed": False}}
    )
    assert again.status_code == 200, again.text

    await api.stack.advance("t_promo", user, timedelta(days=1))
    assert [m.template for m in api.stack.outbox(user)] == ["first"]
    assert steps(api.stack, user)[1] == ("second", "skipped", "unsubscribed")
