"""Each sender's signature: genuine passes; tampered, wrong secret, missing or stale fails.

Known-answer values come from outside this code: openssl for Shopify, Stripe and Segment, and
the Standard Webhooks reference test vector, so signer and verifier cannot agree on a mistake.
"""

from __future__ import annotations

import base64

import pytest

from starter.sources import (
    InvalidSignature,
    MissingSignature,
    SignatureError,
    StaleSignature,
    sign_segment,
    sign_shopify,
    sign_standard_webhook,
    sign_stripe,
    verify_segment,
    verify_shopify,
    verify_standard_webhook,
    verify_stripe,
)
from tests.sources.payloads import raw

T = 1_795_532_400
STRIPE_SECRET = "whsec_4eC39HqLyjWDarjtT1zdp7dc"
STANDARD_SECRET = "whsec_" + base64.b64encode(b"journeys standard webhook key 32").decode()


def test_the_errors_are_signature_errors_and_distinct() -> None:
    for error in (MissingSignature, InvalidSignature, StaleSignature):
        assert issubclass(error, SignatureError)
    assert len({MissingSignature, InvalidSignature, StaleSignature}) == 3


# Shopify -----------------------------------------------------------------------------------


def test_shopify_signature_matches_openssl() -> None:
    # printf '%s' '{"id":1}' | openssl dgst -sha256 -hmac shpss_secret -binary | base64
    assert sign_shopify(b'{"id":1}', "shpss_secret") == (
        "xocA3LkeJ/RvNrkxep1EUtFHuj7rIoIqZYaLU26LyPQ="
    )


def test_a_genuine_shopify_delivery_passes_with_any_header_case() -> None:
    body = raw("shopify_checkout")
    signature = sign_shopify(body, "shpss_secret")
    verify_shopify({"X-Shopify-Hmac-Sha256": signature}, body, "shpss_secret")
    verify_shopify({"x-shopify-hmac-sha256": signature}, body, "shpss_secret")


@pytest.mark.parametrize(
    ("headers", "body", "secret", "error"),
    [
        pytest.param(None, b"tampered", "shpss_secret", InvalidSignature, id="tampered-body"),
        pytest.param(None, None, "shpss_other", InvalidSignature, id="wrong-secret"),
        pytest.param({}, None, "shpss_secret", MissingSignature, id="missing-header"),
        pytest.param(
            {"X-Shopify-Hmac-Sha256": " "}, None, "shpss_secret", MissingSignature, id="blank"
        ),
        pytest.param(
            {"X-Shopify-Hmac-Sha256": "not-base64-ü"},
            None,
            "shpss_secret",
            InvalidSignature,
            id="garbage",
        ),
    ],
)
def test_shopify_refuses(
    headers: dict[str, str] | None, body: bytes | None, secret: str, error: type[Exception]
) -> None:
    genuine = raw("shopify_checkout")
    signed = {"X-Shopify-Hmac-Sha256": sign_shopify(genuine, "shpss_secret")}
    with pytest.raises(error):
        verify_shopify(signed if headers is None else headers, body or genuine, secret)


# Stripe ------------------------------------------------------------------------------------


def test_stripe_signature_matches_openssl() -> None:
    # printf '%s' '1700000000.{"id":"evt_1"}' | openssl dgst -sha256 -hmac whsec_test
    assert sign_stripe(b'{"id":"evt_1"}', "whsec_test", 1_700_000_000) == (
        "t=1700000000,v1=c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925"
    )


def stripe_headers(body: bytes, secret: str = STRIPE_SECRET, t: int = T) -> dict[str, str]:
    return {"Stripe-Signature": sign_stripe(body, secret, t)}


def test_a_genuine_stripe_event_passes() -> None:
    body = raw("stripe_subscription_deleted")
    verify_stripe(stripe_headers(body), body, STRIPE_SECRET, now=T)
    verify_stripe(
        {"stripe-signature": sign_stripe(body, STRIPE_SECRET, T)}, body, STRIPE_SECRET, now=T
    )


def test_stripe_tampered_body_wrong_secret_and_missing_header_fail() -> None:
    body = raw("stripe_subscription_deleted")
    with pytest.raises(InvalidSignature):
        verify_stripe(stripe_headers(body), body.replace(b"cus_", b"cus_X"), STRIPE_SECRET, now=T)
    with pytest.raises(InvalidSignature):
        verify_stripe(stripe_headers(body), body, "whsec_other", now=T)
    with pytest.raises(MissingSignature):
        verify_stripe({}, body, STRIPE_SECRET, now=T)


@pytest.mark.parametrize("now", [T + 300, T - 300, T + 299.5])
def test_stripe_within_tolerance_passes(now: float) -> None:
    body = raw("stripe_subscription_deleted")
    verify_stripe(stripe_headers(body), body, STRIPE_SECRET, now=now)


@pytest.mark.parametrize("now", [T + 301, T - 301])
def test_stripe_outside_tolerance_is_stale(now: float) -> None:
    body = raw("stripe_subscription_deleted")
    with pytest.raises(StaleSignature):
        verify_stripe(stripe_headers(body), body, STRIPE_SECRET, now=now)


def test_stripe_tolerance_is_configurable() -> None:
    body = raw("stripe_subscription_deleted")
    verify_stripe(stripe_headers(body), body, STRIPE_SECRET, now=T + 600, tolerance=600)
    with pytest.raises(StaleSignature):
        verify_stripe(stripe_headers(body), body, STRIPE_SECRET, now=T + 61, tolerance=60)


def test_a_stale_forgery_is_reported_as_invalid_not_stale() -> None:
    body = raw("stripe_subscription_deleted")
    with pytest.raises(InvalidSignature):
        verify_stripe(stripe_headers(body, "whsec_other"), body, STRIPE_SECRET, now=T + 9999)


@pytest.mark.parametrize("good_first", [True, False])
def test_stripe_passes_when_any_of_several_v1_signatures_matches(good_first: bool) -> None:
    # During a secret roll Stripe signs with every active secret: t=...,v1=<new>,v1=<old>.
    body = raw("stripe_subscription_deleted")
    good = sign_stripe(body, STRIPE_SECRET, T).split(",")[1]
    old = sign_stripe(body, "whsec_retired", T).split(",")[1]
    pair = f"{good},{old}" if good_first else f"{old},{good}"
    headers = {"Stripe-Signature": f"t={T},{pair},v0=6ffbb59b2300aae63f272406069a9788"}
    verify_stripe(headers, body, STRIPE_SECRET, now=T)


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(f"t={T}", id="no-v1"),
        pytest.param(f"t={T},v0=abc", id="only-v0"),
        pytest.param("v1=abc", id="no-t"),
        pytest.param("t=yesterday,v1=abc", id="t-not-a-number"),
        pytest.param(f"t={T},t={T + 1},v1=abc", id="two-t"),
    ],
)
def test_malformed_stripe_headers_are_invalid(header: str) -> None:
    with pytest.raises(InvalidSignature):
        verify_stripe({"Stripe-Signature": header}, b"{}", STRIPE_SECRET, now=T)


def test_the_stripe_timestamp_is_signed() -> None:
    body = raw("stripe_subscription_deleted")
    signature = sign_stripe(body, STRIPE_SECRET, T).split(",")[1]
    with pytest.raises(InvalidSignature):  # a replayer cannot refresh t
        verify_stripe(
            {"Stripe-Signature": f"t={T + 1000},{signature}"}, body, STRIPE_SECRET, now=T + 1000
        )


# Standard Webhooks -------------------------------------------------------------------------


def test_standard_webhook_signature_matches_the_spec_test_vector() -> None:
    assert (
        sign_standard_webhook(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            b'{"test": 2432232314}',
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        )
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def standard_headers(
    body: bytes, secret: str = STANDARD_SECRET, msg_id: str = "msg_2Kx9", t: int = T
) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(t),
        "webhook-signature": sign_standard_webhook(msg_id, t, body, secret),
    }


BODY = b'{"type":"track","event":"Trial Started","userId":"user_42"}'


def test_a_genuine_standard_webhook_passes_with_any_header_case() -> None:
    verify_standard_webhook(standard_headers(BODY), BODY, STANDARD_SECRET, now=T)
    upper = {key.title(): value for key, value in standard_headers(BODY).items()}
    verify_standard_webhook(upper, BODY, STANDARD_SECRET, now=T)


def test_a_raw_secret_without_prefix_is_used_as_utf8_bytes() -> None:
    secret = "plain shared secret ☃"
    verify_standard_webhook(standard_headers(BODY, secret), BODY, secret, now=T)
    with pytest.raises(InvalidSignature):  # not the same key as whsec_ + base64 of it
        verify_standard_webhook(
            standard_headers(BODY, secret),
            BODY,
            "whsec_" + base64.b64encode(b"other").decode(),
            now=T,
        )


def test_standard_webhook_tampering_is_invalid() -> None:
    headers = standard_headers(BODY)
    with pytest.raises(InvalidSignature):
        verify_standard_webhook(headers, BODY.replace(b"42", b"43"), STANDARD_SECRET, now=T)
    with pytest.raises(InvalidSignature):
        verify_standard_webhook(headers, BODY, "whsec_" + base64.b64encode(b"x").decode(), now=T)
    with pytest.raises(InvalidSignature):  # the ID is signed too
        verify_standard_webhook(
            {**headers, "webhook-id": "msg_other"}, BODY, STANDARD_SECRET, now=T
        )
    with pytest.raises(InvalidSignature):
        verify_standard_webhook(
            {**headers, "webhook-timestamp": "soon"}, BODY, STANDARD_SECRET, now=T
        )


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_each_standard_webhook_header_is_required(missing: str) -> None:
    headers = {k: v for k, v in standard_headers(BODY).items() if k != missing}
    with pytest.raises(MissingSignature):
        verify_standard_webhook(headers, BODY, STANDARD_SECRET, now=T)


def test_standard_webhook_staleness() -> None:
    headers = standard_headers(BODY)
    verify_standard_webhook(headers, BODY, STANDARD_SECRET, now=T + 300)
    with pytest.raises(StaleSignature):
        verify_standard_webhook(headers, BODY, STANDARD_SECRET, now=T + 301)
    with pytest.raises(StaleSignature):
        verify_standard_webhook(headers, BODY, STANDARD_SECRET, now=T - 301)


def test_standard_webhook_key_rotation_passes_if_any_entry_matches() -> None:
    headers = standard_headers(BODY)
    old = sign_standard_webhook("msg_2Kx9", T, BODY, "whsec_" + base64.b64encode(b"old").decode())
    asymmetric = "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl"
    for signatures in (
        f"{old} {headers['webhook-signature']}",
        f"{asymmetric} {old}  {headers['webhook-signature']}",
    ):
        verify_standard_webhook(
            {**headers, "webhook-signature": signatures}, BODY, STANDARD_SECRET, now=T
        )
    with pytest.raises(InvalidSignature):
        verify_standard_webhook(
            {**headers, "webhook-signature": f"{old} {asymmetric}"}, BODY, STANDARD_SECRET, now=T
        )


def test_a_malformed_whsec_secret_is_our_configuration_error() -> None:
    with pytest.raises(ValueError, match="base64") as caught:
        verify_standard_webhook(standard_headers(BODY), BODY, "whsec_not*base64", now=T)
    assert not isinstance(caught.value, SignatureError)


# Segment -----------------------------------------------------------------------------------


def test_segment_signature_matches_openssl() -> None:
    # printf '%s' '{"type":"track"}' | openssl dgst -sha1 -hmac seg_secret
    assert sign_segment(b'{"type":"track"}', "seg_secret") == (
        "464bb98c75e4ec063001eb620cef339b9f35d663"
    )


def test_segment_verification() -> None:
    body = BODY
    signature = sign_segment(body, "seg_secret")
    verify_segment({"X-Signature": signature}, body, "seg_secret")
    verify_segment({"x-signature": signature.upper()}, body, "seg_secret")
    with pytest.raises(InvalidSignature):
        verify_segment({"X-Signature": signature}, body + b" ", "seg_secret")
    with pytest.raises(InvalidSignature):
        verify_segment({"X-Signature": signature}, body, "seg_other")
    with pytest.raises(MissingSignature):
        verify_segment({"Content-Type": "application/json"}, body, "seg_secret")
