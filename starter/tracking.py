"""GET /c/<token>: a tracked link; GET /o/<token>.gif: the open pixel. No login: the signed
token is the credential (activities/tracking.py says how tokens are made and why they cannot
be forged or pointed elsewhere).

A valid link records the click (journey, step, variant, user, run; once per message and link)
and answers 302 to the target signed into it; an altered, truncated or foreign token is a 400
page that redirects nowhere. A click is never lost to the database: the redirect is answered
even if recording failed (logged), since the recipient wants the page. The pixel records an
open once per message and answers a 1x1 GIF, never cached; an invalid one is a 404.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from activities.tracking import InvalidTrackingToken, read_click, read_open, record_engagement
from starter.settings import signing_key
from starter.sources.kissmetrics import PIXEL

log = logging.getLogger("journeys.tracking")

router = APIRouter(include_in_schema=False)

BROKEN = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>This link does not work</title></head>
<body style="font-family: sans-serif; max-width: 32rem; margin: 4rem auto;">
<h1>This link does not work</h1><p>The link is incomplete or altered. Use the link from the
email.</p></body></html>"""


@router.get("/c/{token}")
async def click(token: str, request: Request) -> Response:
    """Record the click, then send the browser on to the link's own target."""
    try:
        message, target = read_click(signing_key(request.app.state.settings), token)
    except InvalidTrackingToken:
        return HTMLResponse(BROKEN, status_code=400)
    try:
        await asyncio.to_thread(
            record_engagement, request.app.state.store, "click", message, target
        )
    except Exception:  # the recipient still gets the page; the click alone is lost
        log.exception("a click on %s could not be recorded", message.journey)
    return RedirectResponse(target, status_code=302)


@router.get("/o/{token}.gif")
async def opened(token: str, request: Request) -> Response:
    """Record an open (approximate: mail clients that load every image open everything)."""
    try:
        message = read_open(signing_key(request.app.state.settings), token)
    except InvalidTrackingToken:
        return Response(status_code=404)
    try:
        await asyncio.to_thread(record_engagement, request.app.state.store, "open", message)
    except Exception:
        log.exception("an open of %s could not be recorded", message.journey)
    return Response(PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store"})
