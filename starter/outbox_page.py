"""GET /outbox: the local outbox as a page, to read what journeys sent while developing.

It shows recipients, so it needs the API key: as a Bearer header, or a browser's session
cookie from /signin (the `journeys dev` banner prints that address; starter/browser_auth.py).
"""

from __future__ import annotations

import asyncio
from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from activities.tracking import untracked
from starter.browser_auth import page_refusal
from starter.settings import MissingSecretKey, signing_key

router = APIRouter(include_in_schema=False)


@router.get("/outbox")
async def outbox(request: Request, limit: int = 100) -> Response:
    """The newest messages first: when, who, journey and step, status, subject, the body."""
    if (refusal := page_refusal(request)) is not None:
        return refusal
    rows = await asyncio.to_thread(request.app.state.store.outbox)
    rows = list(reversed(rows))[: max(1, min(limit, 1000))]
    try:
        secret: str | None = signing_key(request.app.state.settings)
    except MissingSecretKey:  # nothing was signed then either: only the pixel to drop
        secret = None
    items = "".join(
        f"<details><summary><code>{escape(str(m.created_at)[:19])}</code> "
        f"{escape(m.channel)} to <b>{escape(m.recipient)}</b>: {escape(m.journey)} / "
        f"{escape(m.template)} <i>[{escape(m.status)}]</i> &mdash; {escape(m.subject or '')}"
        f'</summary><iframe sandbox srcdoc="{escape(untracked(m.body_html or "", secret))}" '
        f'style="width:100%;height:20rem;border:1px solid #ccc"></iframe>'
        f"<pre>{escape(m.body_text or '')}</pre></details>"
        for m in rows
    )
    return HTMLResponse(
        "<!doctype html><html><head><meta charset='utf-8'><title>journeys outbox</title></head>"
        "<body style='font-family:sans-serif;margin:2rem'>"
        f"<h1>Outbox</h1><p>{len(rows)} newest messages</p>{items or '<p>Nothing sent yet.</p>'}"
        "</body></html>"
    )
