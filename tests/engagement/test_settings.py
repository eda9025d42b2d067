"""The feedback webhooks' settings follow the product's rules: a secret set but empty or short,
or a SendGrid verification key that is no ECDSA key, stops the real `journeys api` at start,
naming the variable and never echoing its value; until a webhook's setting is set, its route
answers 404."""

from __future__ import annotations

import base64

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import SecretStr

from starter.settings import MIN_SECRET_LENGTH, Settings, serving_problems
from tests.engagement.helpers import TRACKING, sending
from tests.engagement.journeys import Engage
from tests.security.test_start_refusals import GOOD, environment, start_api, stop

SHORT = "s" * (MIN_SECRET_LENGTH - 1)
RSA_KEY = base64.b64encode(
    generate_private_key(public_exponent=65537, key_size=2048)
    .public_key()
    .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
).decode()


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("JOURNEYS_POSTMARK_WEBHOOK_PASSWORD", SHORT, f"is set but {len(SHORT)} characters"),
        ("JOURNEYS_MANDRILL_WEBHOOK_KEY", "   ", "is set but empty"),
        ("JOURNEYS_SENDGRID_WEBHOOK_PUBLIC_KEY", "not-a-key", "is set but not a public key"),
        ("JOURNEYS_SENDGRID_WEBHOOK_PUBLIC_KEY", RSA_KEY, "is set but not an elliptic curve"),
    ],
)
def test_a_weak_or_wrong_feedback_setting_stops_journeys_api_at_start(
    temporal, tmp_path, variable, value, said
):
    env = environment(temporal, tmp_path, JOURNEYS_API_KEY=GOOD, JOURNEYS_SECRET_KEY=GOOD)
    env[variable] = value
    started, process = start_api(env, tmp_path)
    try:
        assert started.returncode == 2, started.output
    finally:
        stop(process)
    assert f"{variable} {said}" in started.output, started.output
    if value.strip() and variable != "JOURNEYS_SENDGRID_WEBHOOK_PUBLIC_KEY":
        assert value not in started.output  # named, never echoed
    assert "Traceback" not in started.output


def test_good_feedback_settings_raise_nothing():
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = base64.b64encode(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))
    pem = key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    for shown in (der.decode(), pem):
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            secret_key=SecretStr(GOOD),
            postmark_webhook_password=SecretStr("p" * MIN_SECRET_LENGTH),
            mandrill_webhook_key=SecretStr("m" * 22),
            sendgrid_webhook_public_key=SecretStr(shown),
        )
        assert serving_problems(settings) == []


async def test_each_webhook_is_404_until_its_setting_is_set(api_for, store):
    api = await api_for(Engage, sending=sending(store), **TRACKING)
    async with httpx.AsyncClient(base_url=api.url) as anyone:
        for vendor in ("sendgrid", "postmark", "mandrill"):
            answer = await anyone.post(f"/v1/feedback/{vendor}", content=b"[]")
            assert answer.status_code == 404, vendor
            assert "JOURNEYS_" in answer.json()["detail"]
        assert (await anyone.head("/v1/feedback/mandrill")).status_code == 404
