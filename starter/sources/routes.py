"""POST /v1/sources/{shopify,stripe,webhook,segment}: authenticated by each sender's signature.

A source answers 404 until its secret is set (JOURNEYS_SHOPIFY_SECRET, JOURNEYS_STRIPE_SECRET,
JOURNEYS_STANDARD_WEBHOOK_SECRET, JOURNEYS_SEGMENT_SECRET), 401 on a bad or stale signature,
200 "ignored" for a topic no journey uses, 503 if anything could not be taken (the sender
retries; dedupe keeps it single).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr, TypeAdapter

from starter.calls import Call, nul_at, parse_json
from starter.ingest import Accepted, Ingestor
from starter.sources import (
    SignatureError,
    SourceCall,
    UnsupportedTopic,
    shopify_calls,
    standard_webhook_calls,
    stripe_calls,
    verify_segment,
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
    to_calls: Callable[[dict[str, str], Any], list[SourceCall]],
) -> JSONResponse:
    if secret is None:
        raise HTTPException(404, "this source is not configured (set its secret)")
    received = bytearray()
    async for chunk in request.stream():  # stop at the limit: a chunked body has no length
        received += chunk
        if len(received) > MAX_BODY:
            raise HTTPException(413, f"body over {MAX_BODY} bytes")
    body = bytes(received)
    try:
        verify(dict(request.headers), body, secret.get_secret_value())
    except SignatureError as err:
        return JSONResponse({"detail": f"signature rejected: {err}"}, status_code=401)
    try:
        payload = parse_json(body)
    except ValueError:
        raise HTTPException(400, "malformed JSON body") from None
    if nul_at(payload) is not None:
        raise HTTPException(422, "payload not understood: a NUL character in a string")
    try:
        source_calls = await asyncio.to_thread(to_calls, dict(request.headers), payload)
        calls = [_CALL.validate_python(call.to_segment()) for call in source_calls]
    except UnsupportedTopic as err:
        return JSONResponse({"status": "ignored", "detail": str(err)})
    except ValueError as err:  # InvalidPayload, or a call our API's models refuse
        raise HTTPException(422, f"payload not understood: {err}") from err
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

    def calls(_: dict[str, str], payload: Any) -> list[SourceCall]:
        return [_with_user(call, store) for call in stripe_calls(payload)]

    return await _take(request, request.app.state.settings.stripe_secret, verify_stripe, calls)


def _with_user(call: SourceCall, store: Any) -> SourceCall:
    """Without metadata.user_id: the user an identify linked to the customer, else its ID."""
    if call.user_id is not None:
        return call
    customer = str(call.properties["stripe_customer_id"])
    user = store.resolve_alias("stripe_customer_id", customer) or customer
    return call.model_copy(update={"user_id": user})


@router.post("/webhook")
async def standard_webhook(request: Request) -> JSONResponse:
    """Any sender using Standard Webhooks; the body is a Segment call or a list of them."""
    return await _take(
        request,
        request.app.state.settings.standard_webhook_secret,
        verify_standard_webhook,
        standard_webhook_calls,
    )


@router.post("/segment")
async def segment(request: Request) -> JSONResponse:
    """Segment's webhook destination, signed with X-Signature: every call type is posted here;
    track and identify are taken, the rest (page, screen, group, alias, delete) ignored."""

    def calls(_: dict[str, str], payload: Any) -> list[SourceCall]:
        # The call's own messageId is the dedupe key; without a timestamp, it happened now.
        return standard_webhook_calls({"webhook-timestamp": str(int(time.time()))}, payload)

    return await _take(request, request.app.state.settings.segment_secret, verify_segment, calls)
