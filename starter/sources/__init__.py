"""Senders' own webhooks: verify the signature on the raw body, then map to our calls.

SignatureError              401: missing, wrong or stale signature
UnsupportedTopic            200 "ignored": a topic or event type no journey uses
"""

from __future__ import annotations

from starter.sources.mapping import UnsupportedTopic, shopify_calls, stripe_calls
from starter.sources.signatures import (
    SignatureError,
    sign_shopify,
    sign_standard_webhook,
    sign_stripe,
    verify_shopify,
    verify_standard_webhook,
    verify_stripe,
)

__all__ = [
    "SignatureError",
    "UnsupportedTopic",
    "shopify_calls",
    "sign_shopify",
    "sign_standard_webhook",
    "sign_stripe",
    "stripe_calls",
    "verify_shopify",
    "verify_standard_webhook",
    "verify_stripe",
]
