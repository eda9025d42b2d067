"""Senders' own webhooks: verify the native signature on the raw body, then map to our calls.

Each vendor module is pure (no HTTP, store or clock unless passed `now`), so the API layer
does the I/O and maps the outcomes:

    SignatureError (MissingSignature, InvalidSignature, StaleSignature)   401
    UnsupportedTopic        200 "ignored": a topic or event type no journey uses
    InvalidPayload          422: signed, but not the shape its topic promises (a ValueError)

Verify first, parse JSON second: every signature covers the raw bytes.
"""

from __future__ import annotations

from starter.sources.errors import (
    InvalidPayload,
    InvalidSignature,
    MissingSignature,
    SignatureError,
    StaleSignature,
    UnsupportedTopic,
)
from starter.sources.models import SourceCall
from starter.sources.segment import verify_segment
from starter.sources.shopify import shopify_calls, shopify_product, verify_shopify
from starter.sources.signing import sign_segment, sign_shopify, sign_standard_webhook, sign_stripe
from starter.sources.standard import standard_webhook_calls, verify_standard_webhook
from starter.sources.stripe import stripe_calls, verify_stripe

__all__ = [
    "InvalidPayload",
    "InvalidSignature",
    "MissingSignature",
    "SignatureError",
    "SourceCall",
    "StaleSignature",
    "UnsupportedTopic",
    "shopify_calls",
    "shopify_product",
    "sign_segment",
    "sign_shopify",
    "sign_standard_webhook",
    "sign_stripe",
    "standard_webhook_calls",
    "stripe_calls",
    "verify_segment",
    "verify_shopify",
    "verify_standard_webhook",
    "verify_stripe",
]
