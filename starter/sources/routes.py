"""POST /v1/sources/{shopify,stripe,webhook,segment}: authenticated by each sender's signature.

A source answers 404 until its secret is set (JOURNEYS_SHOPIFY_SECRET, JOURNEYS_STRIPE_SECRET,
JOURNEYS_STANDARD_WEBHOOK_SECRET, JOURNEYS_SEGMENT_SECRET), 401 on a bad or stale signature,
408 for a body not received within the deadline, 200 "ignored" for a topic no journey uses, 422
for a signed payload that is not what its topic sends, 503 if anything could not be taken (the
sender retries; dedupe keeps it single).

Anyone can reach these routes, and the signature covers the whole body, so the API's gate
(starter/api.py: IngestGate) reads the body and checks the signature here (`signature_problem`)
before the request may take an ingest slot; the route checks it again, so it stands alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr, TypeAdapter, ValidationError

from starter.calls import (
    BODY_DEADLINE,
    MAX_BODY,
    BodyTooLarge,
    BodyTooSlow,
    Call,
    nul_at,
    parse_json,
    read_body,
)
from starter.ingest import Accepted, Ingestor
from starter.sources import (
    SignatureError,
    SourceCall,
    UnsupportedTopic,
    shopify_calls,
    shopify_product,
    standard_webhook_calls,
    stripe_calls,
    verify_segment,
    verify_shopify,
    verify_standard_webhook,
    verify_stripe,
)
from starter.sources.shopify import PRODUCT_TOPICS

router = APIRouter(prefix="/v1/sources", tags=["sources"])
_CALL: TypeAdapter[Any] = TypeAdapter(Call)


@dataclass(frozen=True)
class Source:
    """A sender: the setting holding its secret, and how its signature is checked."""

    secret: str
    verify: Callable[..., None]


SOURCES = {
    "shopify": Source("shopify_secret", verify_shopify),
    "stripe": Source("stripe_secret", verify_stripe),
    "webhook": Source("standard_webhook_secret", verify_standard_webhook),
    "segment": Source("segment_secret", verify_segment),
}
"""By the last part of the path, /v1/sources/<name>."""


def signature_problem(
    source: Source, headers: Mapping[str, str], body: bytes, secret: str
) -> dict[str, str] | None:
    """The 401 answer's body when the signature over `body` fails, else None. It names the
    failure, never the signature that would have passed."""
    try:
        source.verify(headers, body, secret)
    except SignatureError as err:
        return {"detail": f"signature rejected: {err}"}
    return None


async def _take(
    request: Request,
    source: Source,
    to_calls: Callable[[dict[str, str], Any], list[SourceCall]],
) -> JSONResponse:
    payload = await _verified(request, source)
    if isinstance(payload, JSONResponse):
        return payload
    try:
        source_calls = await asyncio.to_thread(to_calls, dict(request.headers), payload)
        calls = [_CALL.validate_python(call.to_segment()) for call in source_calls]
    except UnsupportedTopic as err:
        return JSONResponse({"status": "ignored", "detail": str(err)})
    except ValidationError as err:  # a call our API's models refuse: by field, not by value
        return _not_understood(err)
    except ValueError as err:  # InvalidPayload: its message names what is missing or wrong
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


async def _verified(request: Request, source: Source) -> Any:
    """The delivery's JSON once its body arrived in time and its signature holds, else the
    answer to give (401); 404, 408, 413, 400 and 422 are raised."""
    secret: SecretStr | None = getattr(request.app.state.settings, source.secret)
    if secret is None:
        raise HTTPException(404, "this source is not configured (set its secret)")
    try:  # stop at the limit (a chunked body has no length) and at the deadline
        body = await read_body(request.stream())
    except BodyTooLarge:
        raise HTTPException(413, f"body over {MAX_BODY} bytes") from None
    except BodyTooSlow:
        raise HTTPException(
            408, f"body not received within {BODY_DEADLINE:g} s", {"Connection": "close"}
        ) from None
    problem = signature_problem(source, request.headers, body, secret.get_secret_value())
    if problem is not None:
        return JSONResponse(problem, status_code=401)
    try:
        payload = parse_json(body)
    except ValueError:
        raise HTTPException(400, "malformed JSON body") from None
    if nul_at(payload) is not None:
        raise HTTPException(422, "payload not understood: a NUL character in a string")
    return payload


def _not_understood(err: ValidationError) -> JSONResponse:
    """422 naming each field the mapped call got wrong (never its value: pydantic's own text
    would echo it)."""
    errors = [
        {"field": ".".join(str(p) for p in e["loc"][1:] or e["loc"]), "error": e["msg"]}
        for e in err.errors(include_url=False)
    ]
    return JSONResponse({"detail": "payload not understood", "errors": errors}, status_code=422)


@router.post("/shopify")
async def shopify(request: Request) -> JSONResponse:
    """Shopify webhooks (checkouts/create, checkouts/update, orders/create; products/create and
    products/update keep the catalog current); a body whose shape is not its topic's is a 422,
    and one body counts once per topic whatever its webhook ID."""
    if (request.headers.get("x-shopify-topic") or "").strip() in PRODUCT_TOPICS:
        payload = await _verified(request, SOURCES["shopify"])
        if isinstance(payload, JSONResponse):
            return payload
        try:
            product = shopify_product(request.headers, payload)
        except ValueError as err:
            raise HTTPException(422, f"payload not understood: {err}") from err
        await asyncio.to_thread(request.app.state.store.upsert_products, [product])
        return JSONResponse({"status": "accepted", "products": [product.product_id]})
    return await _take(request, SOURCES["shopify"], shopify_calls)


@router.post("/stripe")
async def stripe(request: Request) -> JSONResponse:
    """Stripe events: a trial starting, an upgrade, a trial turning paid, a cancellation and a
    first paid invoice (starter/sources/stripe.py); anything else is answered "ignored"."""
    store = request.app.state.store

    def calls(_: dict[str, str], payload: Any) -> list[SourceCall]:
        return [_with_user(call, store) for call in stripe_calls(payload)]

    return await _take(request, SOURCES["stripe"], calls)


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
    return await _take(request, SOURCES["webhook"], standard_webhook_calls)


@router.post("/segment")
async def segment(request: Request) -> JSONResponse:
    """Segment's webhook destination, signed with X-Signature: every call type is posted here;
    track and identify are taken, the rest (page, screen, group, alias, delete) ignored."""

    def calls(_: dict[str, str], payload: Any) -> list[SourceCall]:
        # The call's own messageId is the dedupe key; without a timestamp, it happened now.
        return standard_webhook_calls({"webhook-timestamp": str(int(time.time()))}, payload)

    return await _take(request, SOURCES["segment"], calls)
