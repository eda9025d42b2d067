"""The API key for pages a person opens in a browser: Bearer header, or `?key=` in the link."""

from __future__ import annotations

import hmac

from fastapi import Request


def key_allowed(request: Request) -> bool:
    """True when the request carries the API key (compared in constant time), or none is set."""
    key = request.app.state.settings.api_key
    if key is None:
        return True
    header = request.headers.get("authorization", "")
    given = header.partition(" ")[2] if header.lower().startswith("bearer ") else ""
    given = given or request.query_params.get("key", "")
    return hmac.compare_digest(given.encode(), key.get_secret_value().encode())
