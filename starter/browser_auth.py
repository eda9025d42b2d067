"""What a browser may do: sign in once for a session cookie, and what every page tells it.

/outbox and /dashboard show recipients and results, so with JOURNEYS_API_KEY set they need it:

- **Sign in once.** `POST /signin` with the key in the form (the page at `GET /signin`) or as
  `Authorization: Bearer <key>` answers 303 to the page asked for, with a session cookie:
  HttpOnly, SameSite=Strict, Path=/, Secure when the API is reached over HTTPS (or
  JOURNEYS_PUBLIC_URL is https), for SESSION_LIFETIME. The cookie is an expiry and a nonce
  signed with HMAC-SHA256 under a key derived from the API key: it holds nothing secret, cannot
  be made without the key, and dies with the key (change JOURNEYS_API_KEY and every session
  ends). `POST /signout` clears it. The cookie opens the pages only, never /v1 or /metrics.
- **Scripts** send `Authorization: Bearer <key>` on the page itself, as before.
- **`?key=` is never accepted** (it stays in logs, history and referrers): a page asked for
  with one is redirected (303) to the same address without it, and the key in it is not read.
  A page asked for without a credential is a 401 with the sign-in form.

Every HTML page and redirect (`PageHeaders`) is sent with `Cache-Control: no-store`,
`Referrer-Policy: no-referrer`, `X-Frame-Options: DENY`, `X-Content-Type-Options: nosniff` and
a Content-Security-Policy: no scripts, no plugins, forms and frames only to this origin, and
`frame-ancestors 'none'` (FastAPI's /docs pages, which load Swagger UI from a CDN, get only the
frame denial of it).

Without an API key the API serves loopback only (starter/cli.py refuses otherwise), where any
web page the developer opens could still reach it: `LoopbackOnly` answers only requests whose
`Host` names this machine (a DNS-rebinding page's requests carry its own host name: 400) and
takes a JSON call only with a JSON content type (a cross-site form or `no-cors` fetch can send
only form and text types: 415).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Collection
from datetime import timedelta
from html import escape
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from starter.calls import read_body
from starter.settings import Settings, is_loopback

router = APIRouter(include_in_schema=False)

SESSION_COOKIE = "journeys_session"
SESSION_LIFETIME = timedelta(hours=12)
"""How long one sign-in lasts; then the pages ask for the key again."""

_SESSION_CONTEXT = b"journeys browser session v1"
DEFAULT_PAGE = "/dashboard"


# Sessions ---------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _session_mac(api_key: str, payload: str) -> bytes:
    """HMAC-SHA256 of `payload` under a key derived from the API key (never the key itself)."""
    key = hmac.new(api_key.encode(), _SESSION_CONTEXT, hashlib.sha256).digest()
    return hmac.new(key, payload.encode(), hashlib.sha256).digest()


def make_session(api_key: str, now: float | None = None) -> str:
    """A session cookie's value: `<expires>.<nonce>.<signature>`, valid SESSION_LIFETIME."""
    expires = int((time.time() if now is None else now) + SESSION_LIFETIME.total_seconds())
    payload = f"{expires}.{secrets.token_urlsafe(16)}"
    return f"{payload}.{_b64(_session_mac(api_key, payload))}"


def session_valid(api_key: str, value: str, now: float | None = None) -> bool:
    """Whether `value` was made by `make_session` with this API key and has not expired."""
    expires, _, rest = value.partition(".")
    nonce, _, signature = rest.partition(".")
    if not (expires.isascii() and expires.isdigit() and len(expires) <= 12 and nonce):
        return False
    expected = _b64(_session_mac(api_key, f"{expires}.{nonce}"))
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        return False
    return int(expires) > (time.time() if now is None else now)


def _api_key(request: Request) -> str | None:
    settings: Settings = request.app.state.settings
    return settings.api_key.get_secret_value() if settings.api_key is not None else None


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" and token else None


def _matches(given: str | None, api_key: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), api_key.encode())


def signed_in(request: Request) -> bool:
    """True with the API key as a Bearer header or a valid session cookie, or when none is set
    (keyless loopback mode). A `?key=` in the address is never read."""
    api_key = _api_key(request)
    if api_key is None:
        return True
    if _matches(_bearer(request), api_key):
        return True
    cookie = request.cookies.get(SESSION_COOKIE)
    return cookie is not None and session_valid(api_key, cookie)


def page_refusal(request: Request) -> Response | None:
    """None when the request may see the page; else the answer: 303 to the same address
    without `?key=`, or 401 with the sign-in form."""
    if "key" in request.query_params:
        return RedirectResponse(_without_key(request.url.path, request.url.query), status_code=303)
    if signed_in(request):
        return None
    here = _without_key(request.url.path, request.url.query)
    page = sign_in_page(here, status=401)
    page.headers["WWW-Authenticate"] = "Bearer"
    return page


# Sign-in pages ----------------------------------------------------------------------------------


def _without_key(path: str, query: str) -> str:
    kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "key"]
    return path + (f"?{urlencode(kept)}" if kept else "")


def _safe_next(target: str | None) -> str:
    """A path on this site to go to after signing in (never another site, never `?key=`)."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith(("//", "/\\"))
        or any(c.isspace() or not c.isprintable() or c == "\\" for c in target)
    ):
        return DEFAULT_PAGE
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return DEFAULT_PAGE
    return _without_key(parts.path, parts.query)


SIGN_IN = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>journeys: sign in</title><meta name="viewport" content="width=device-width, initial-scale=1">
</head><body style="font-family: sans-serif; max-width: 28rem; margin: 4rem auto;">
<h1>Sign in</h1>{message}
<form method="post" action="/signin">
<input type="hidden" name="next" value="{next}">
<p><label>API key (JOURNEYS_API_KEY)<br>
<input type="password" name="key" id="key" autocomplete="current-password" required autofocus
 style="width: 100%"></label></p>
<p><button type="submit">Sign in</button></p></form>
<p style="color: #555">One sign-in lasts {hours} hours in this browser. Scripts may send
<code>Authorization: Bearer &lt;key&gt;</code> instead.</p></body></html>"""


def sign_in_page(next_page: str, status: int = 200, message: str = "") -> HTMLResponse:
    hours = int(SESSION_LIFETIME.total_seconds() // 3600)
    body = SIGN_IN.format(
        next=escape(next_page), hours=hours, message=f"<p><b>{message}</b></p>" if message else ""
    )
    return HTMLResponse(body, status_code=status)


@router.get("/signin")
async def sign_in_form(request: Request, next: str | None = None) -> Response:
    """The sign-in form; without an API key there is nothing to sign in to."""
    target = _safe_next(next)
    if _api_key(request) is None:
        return RedirectResponse(target, status_code=303)
    return sign_in_page(target)


@router.post("/signin")
async def sign_in(request: Request) -> Response:
    """The key from the form (`key`) or a Bearer header: 303 to `next` with a session cookie,
    or 401 with the form again. The key given is never echoed."""
    body = await read_body(request.stream(), limit=16_384)
    form = dict(parse_qsl(body.decode("utf-8", "replace")))
    target = _safe_next(form.get("next") or request.query_params.get("next"))
    api_key = _api_key(request)
    if api_key is None:
        return RedirectResponse(target, status_code=303)
    if not (_matches(form.get("key"), api_key) or _matches(_bearer(request), api_key)):
        return sign_in_page(target, status=401, message="That is not the API key.")
    answer = RedirectResponse(target, status_code=303)
    answer.set_cookie(
        SESSION_COOKIE,
        make_session(api_key),
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path="/",
        secure=_secure(request),
        httponly=True,
        samesite="strict",
    )
    return answer


@router.post("/signout")
async def sign_out(request: Request) -> Response:
    """Forget this browser's session."""
    answer = RedirectResponse("/signin", status_code=303)
    answer.delete_cookie(
        SESSION_COOKIE, path="/", secure=_secure(request), httponly=True, samesite="strict"
    )
    return answer


def _secure(request: Request) -> bool:
    settings: Settings = request.app.state.settings
    return request.url.scheme == "https" or settings.public_url.startswith("https://")


# Headers on every page --------------------------------------------------------------------------

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data: https:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
"""Our pages run no script. Inline styles are the pages' own (and the emails' in the outbox's
sandboxed previews, which inherit this policy, as do their https images)."""

_PAGE_HEADERS = {
    b"cache-control": b"no-store",
    b"referrer-policy": b"no-referrer",
    b"x-frame-options": b"DENY",
    b"x-content-type-options": b"nosniff",
}


class PageHeaders:
    """Adds the page headers to every HTML answer and every redirect outside /v1 and /metrics
    (the JSON API is left alone, and costs nothing here)."""

    def __init__(self, app: ASGIApp, docs_paths: Collection[str | None] = ()) -> None:
        self.app = app
        self.docs_paths = frozenset(docs_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or path.startswith("/v1/") or path == "/metrics":
            await self.app(scope, receive, send)
            return
        policy = (
            b"frame-ancestors 'none'"
            if path in self.docs_paths
            else CONTENT_SECURITY_POLICY.encode()
        )

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                redirect = 300 <= message["status"] < 400
                if redirect or content_type.lower().startswith(b"text/html"):
                    added = {**_PAGE_HEADERS, b"content-security-policy": policy}
                    headers = [(k, v) for k, v in headers if k.lower() not in added]
                    headers += list(added.items())
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


# Keyless loopback mode --------------------------------------------------------------------------


def loopback_host(value: str) -> bool:
    """Whether a `Host` header names this machine: localhost, 127.0.0.0/8 or [::1], with or
    without a port."""
    host = value.strip()
    if host.startswith("["):
        inside, closed, rest = host[1:].partition("]")
        if not closed or (rest and not (rest[:1] == ":" and rest[1:].isdigit())):
            return False
        host = inside
    else:
        name, colon, port = host.rpartition(":")
        if colon:
            if not port.isdigit():
                return False
            host = name
    return is_loopback(host.lower())


def json_content_type(value: str) -> bool:
    """`application/json` or `application/<anything>+json`, with any parameters."""
    media = value.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class LoopbackOnly:
    """Keyless loopback mode's guard (mounted only without JOURNEYS_API_KEY): 400 unless the
    `Host` names this machine (DNS rebinding), 415 for a POST to /v1 (sources aside, which are
    signed) without a JSON content type (a cross-site form or `no-cors` fetch)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan; the API has no websockets
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if not loopback_host(headers.get(b"host", "")):
            answer = JSONResponse(
                {
                    "detail": "without JOURNEYS_API_KEY the API answers only requests addressed "
                    "to this machine (Host: localhost, 127.0.0.1 or [::1])"
                },
                status_code=400,
                headers={"Connection": "close"},
            )
            await answer(scope, receive, send)
            return
        path: str = scope["path"]
        if (
            scope["method"] == "POST"
            and path.startswith("/v1/")
            and not path.startswith("/v1/sources/")
            and not json_content_type(headers.get(b"content-type", ""))
        ):
            answer = JSONResponse(
                {
                    "detail": "Content-Type must be application/json: without JOURNEYS_API_KEY "
                    "the API takes JSON calls only, so no web page can post them cross-site"
                },
                status_code=415,
                headers={"Connection": "close"},
            )
            await answer(scope, receive, send)
            return
        await self.app(scope, receive, send)
