"""One-click unsubscribe (RFC 8058) and the preference page behind every email's link.

No login and no cookies: the signed link alone identifies the recipient and the journey whose
email carried it. What a POST does depends on what sent it:

- a mail client's one-click POST (`List-Unsubscribe=One-Click`, nothing else): leaves the
  message's topic when its journey declares one (`topic = "offers"`), else all marketing email;
- the page's "Unsubscribe from everything" button (`scope=all`): all marketing email;
- the page's topic button (`scope=topic`): that message's topic only;
- the page's preference form (`scope=preferences`): a checkbox per topic; the recipient may
  leave some and come back to others (it is their own choice, made on their own link).

GET only shows the page, so a link scanner or a preview never unsubscribes anyone.
"""

from __future__ import annotations

import asyncio
from html import escape
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from activities.unsubscribe import InvalidUnsubscribeToken, read_token
from starter.settings import signing_key

router = APIRouter(include_in_schema=False)

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 32rem; margin: 4rem auto;">
<h1>{title}</h1>{body}</body></html>"""

MAX_FORM = 16 * 1024
"""Bytes of form a preference page can send (a checkbox per topic); more is refused."""


def _secret(request: Request) -> str:
    return signing_key(request.app.state.settings)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(PAGE.format(title=escape(title), body=body), status_code=status)


def _invalid() -> HTMLResponse:
    return _page(
        "This link does not work",
        "<p>The unsubscribe link is incomplete or altered. Use the link from the email.</p>",
        status=400,
    )


def topics(request: Request) -> dict[str, str | None]:
    """Each loaded journey's topic, by journey name (None: it declares none)."""
    return {j.name: j.topic for j in request.app.state.router.journeys}


def _label(topic: str) -> str:
    return topic.replace("_", " ")


def _choices(store: Any, user_id: str) -> tuple[bool, dict[tuple[str, str], bool]]:
    profile = store.get_profile(user_id)
    return bool(profile and profile.email_unsubscribed_at), store.channel_subscriptions(user_id)


@router.get("/u/{token}")
async def preference_page(token: str, request: Request) -> HTMLResponse:
    """The page: leave this message's topic, choose topics, or leave everything."""
    try:
        user_id, journey = read_token(_secret(request), token)
    except InvalidUnsubscribeToken:
        return _invalid()
    by_journey = topics(request)
    topic = by_journey.get(journey)
    everything, chosen = await asyncio.to_thread(_choices, request.app.state.store, user_id)
    action = f"/u/{escape(token)}"
    if everything:
        return _page(
            "You are unsubscribed",
            "<p>You get no marketing emails from us. To hear from us again, ask the team that "
            "sent them.</p>",
        )
    parts = []
    if topic:
        parts.append(
            f'<form method="post" action="{action}"><input type="hidden" name="scope" '
            f'value="topic"><p>Stop emails about <strong>{escape(_label(topic))}</strong>?</p>'
            f'<button type="submit">Unsubscribe from {escape(_label(topic))}</button></form>'
        )
    known = sorted({t for t in by_journey.values() if t})
    if known:
        boxes = "".join(
            f'<p><label><input type="checkbox" name="topic" value="{escape(t)}"'
            f"{'' if chosen.get(('email', t)) is False else ' checked'}> "
            f"{escape(_label(t))}</label></p>"
            for t in known
        )
        parts.append(
            f'<form method="post" action="{action}"><input type="hidden" name="scope" '
            f'value="preferences"><h2>Emails you get</h2>{boxes}'
            '<button type="submit">Save my choices</button></form>'
        )
    parts.append(
        f'<form method="post" action="{action}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<input type="hidden" name="scope" value="all">'
        "<p>Stop all marketing emails to this address?</p>"
        '<button type="submit">Unsubscribe from everything</button></form>'
    )
    return _page("Unsubscribe" if not known else "Email preferences", "".join(parts))


@router.post("/u/{token}")
async def unsubscribe(token: str, request: Request) -> HTMLResponse:
    """Unsubscribe at once (a mail client's one-click POST), or apply the page's choice."""
    try:
        user_id, journey = read_token(_secret(request), token)
    except InvalidUnsubscribeToken:
        return _invalid()
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            return _page("Too much", "<p>That form is too large.</p>", status=413)
    form = parse_qs(body.decode("utf-8", "replace"), max_num_fields=256)
    scope = (form.get("scope") or [""])[0]
    by_journey = topics(request)
    topic = by_journey.get(journey)
    store = request.app.state.store
    source = f"link:{journey}"
    if scope == "preferences":
        wanted = set(form.get("topic", []))
        known = {t for t in by_journey.values() if t}
        _, chosen = await asyncio.to_thread(_choices, store, user_id)
        for name in sorted(known):
            subscribed = name in wanted
            if chosen.get(("email", name), True) != subscribed:
                await asyncio.to_thread(
                    store.set_channel_subscription, user_id, "email", name, subscribed, source
                )
        left = sorted(known - wanted)
        said = ", ".join(map(_label, left)) if left else "none"
        return _page("Your choices are saved", f"<p>Topics you left: {escape(said)}.</p>")
    if topic and scope != "all":  # the one-click header, or the topic button
        await asyncio.to_thread(
            store.set_channel_subscription, user_id, "email", topic, False, source
        )
        return _page(
            "You are unsubscribed",
            f"<p>You will get no more emails about {escape(_label(topic))}. "
            f'<a href="/u/{escape(token)}">Choose other topics, or leave everything</a>.</p>',
        )
    # Kept apart from traits (profiles.email_unsubscribed_at), where no identify can undo it.
    await asyncio.to_thread(store.set_subscription, user_id, False, journey)
    return _page("You are unsubscribed", "<p>You will get no more marketing emails from us.</p>")
