"""POST /v1/sources/{shopify,stripe,webhook}: authenticated by each sender's own signature.

A source answers 404 until its secret is set (JOURNEYS_SHOPIFY_SECRET, JOURNEYS_STRIPE_SECRET,
JOURNEYS_STANDARD_WEBHOOK_SECRET), 401 on a bad or stale signature, 200 "ignored" for a topic no
journey uses, 503 if anything could not be taken (the sender retries; dedupe keeps it single).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr, TypeAdapter, ValidationError

from starter.calls import Call
from starter.ingest import Accepted, Ingestor
from starter.sources.mapping import UnsupportedTopic, shopify_calls, stripe_calls
from starter.sources.signatures import (
    SignatureError,
    verify_shopify,
    verify_standard_webhook,
    verify_stripe,
)

router = APIRouter(prefix="/v1/sources", tags=["sources"])
_CALL: TypeAdapter[Any] = TypeAdapter(Call)
MAX_BODY = 1_000_000


async def _take(
    request: Request,
    secret: SecretStr | None,
    verify: Callable[..., None],
    to_calls: Callable[[dict[str, str], Any], list[dict[str, Any]]],
) -> JSONResponse:
    if secret is None:
        raise HTTPException(404, "this source is not configured (set its secret)")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise HTTPException(413, f"body over {MAX_BODY} bytes")
    try:
        verify(dict(request.headers), body, secret.get_secret_value())
    except SignatureError as err:
        return JSONResponse({"detail": f"signature rejected: {err}"}, status_code=401)
    try:
        payload = json.loads(body)
    except ValueError:
        raise HTTPException(400, "malformed JSON body") from None
    try:
        raw_calls = await asyncio.to_thread(to_calls, dict(request.headers), payload)
        calls = [_CALL.validate_python(call) for call in raw_calls]
    except UnsupportedTopic as err:
        return JSONResponse({"status": "ignored", "detail": str(err)})
    except (ValidationError, KeyError, TypeError, AttributeError) as err:
        raise HTTPException(422, f"payload not understood: {type(err).__name__}") from err
    ingestor: Ingestor = request.app.state.ingestor
    results = await ingestor.many(calls)
    if not all(isinstance(r, Accepted) for r in results):
        return JSONResponse(
            {"detail": "temporarily unavailable; retry"},
            status_code=503,
            headers={"Retry-After": "5"},
        )
    return JSONResponse(
        {
            "status": "accepted",
            "calls": [r.model_dump() for r in results if isinstance(r, Accepted)],
        }
    )


@router.post("/shopify")
async def shopify(request: Request) -> JSONResponse:
    """Shopify webhooks (checkouts/create, checkouts/update, orders/create)."""
    return await _take(
        request, request.app.state.settings.shopify_secret, verify_shopify, shopify_calls
    )


@router.post("/stripe")
async def stripe(request: Request) -> JSONResponse:
    """Stripe events (customer.subscription.created and .deleted)."""
    store = request.app.state.store

    def calls(_: dict[str, str], payload: Any) -> list[dict[str, Any]]:
        return stripe_calls(
            payload, lambda customer: store.resolve_alias("stripe_customer_id", customer)
        )

    return await _take(request, request.app.state.settings.stripe_secret, verify_stripe, calls)


@router.post("/webhook")
async def standard_webhook(request: Request) -> JSONResponse:
    """Any sender using Standard Webhooks; the body is a Segment call or a list of them."""

    def calls(headers: dict[str, str], payload: Any) -> list[dict[str, Any]]:
        items = payload if isinstance(payload, list) else [payload]
        webhook_id = headers.get("webhook-id", "")
        return [
            {"messageId": f"{webhook_id}:{i}" if len(items) > 1 else webhook_id, **item}
            for i, item in enumerate(items)
        ]

    return await _take(
        request, request.app.state.settings.standard_webhook_secret, verify_standard_webhook, calls
    )
