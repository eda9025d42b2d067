"""One-click unsubscribe (RFC 8058): POST unsubscribes at once, GET shows a page with a button.

No login and no cookies: the signed link alone identifies the recipient. Mail clients POST the
form body `List-Unsubscribe=One-Click`; people who click the link in the email get the page.
"""

from __future__ import annotations

import asyncio
from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from activities.unsubscribe import InvalidUnsubscribeToken, read_token
from starter.settings import signing_key

router = APIRouter(include_in_schema=False)

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 32rem; margin: 4rem auto;">
<h1>{title}</h1>{body}</body></html>"""


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


@router.get("/u/{token}")
async def confirm_page(token: str, request: Request) -> HTMLResponse:
    """A normal page with one button: a link preview or a curious click never unsubscribes."""
    try:
        read_token(_secret(request), token)
    except InvalidUnsubscribeToken:
        return _invalid()
    return _page(
        "Unsubscribe",
        f'<form method="post" action="/u/{escape(token)}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        "<p>Stop marketing emails to this address?</p>"
        '<button type="submit">Unsubscribe</button></form>',
    )


@router.post("/u/{token}")
async def unsubscribe(token: str, request: Request) -> HTMLResponse:
    """Unsubscribe at once (mail clients' one-click POST, or the page's button)."""
    try:
        user_id, journey = read_token(_secret(request), token)
    except InvalidUnsubscribeToken:
        return _invalid()
    # Kept apart from traits (profiles.email_unsubscribed_at), where no identify can undo it.
    store = request.app.state.store
    await asyncio.to_thread(store.set_subscription, user_id, False, journey)
    return _page("You are unsubscribed", "<p>You will get no more marketing emails from us.</p>")
