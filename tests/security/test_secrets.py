"""Secrets come from the environment only, are never printed, and have no usable default.

Every setting that holds a key, secret or password is a SecretStr (pydantic prints it as
`**********`) defaulting to None. The one built-in key, for signing unsubscribe links while
developing, is refused as soon as those links would leave the machine, by the API and the
worker alike: it is public, so links signed with it could be forged for any user.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
from pydantic import SecretStr

from activities.unsubscribe import make_token
from starter.api import create_app
from starter.cli import main
from starter.settings import (
    DEVELOPMENT_KEY,
    MissingSecretKey,
    Settings,
    secret_key,
    signing_key,
)
from worker import delivery_policy

SECRET_NAME = re.compile(r"key|secret|password|token", re.IGNORECASE)


def secret_fields() -> dict[str, typing.Any]:
    hints = typing.get_type_hints(Settings)
    return {name: hints[name] for name in Settings.model_fields if SECRET_NAME.search(name)}


def test_every_secret_setting_is_a_secret_str_with_no_default() -> None:
    fields = secret_fields()
    assert {"api_key", "secret_key", "provider_api_key", "smtp_password"} <= set(fields)
    for name, hint in fields.items():
        assert SecretStr in typing.get_args(hint), f"{name} is {hint}, not SecretStr"
        assert Settings.model_fields[name].default is None, f"{name} has a default"


def test_secrets_are_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env file here
    for name in secret_fields():
        monkeypatch.delenv(f"JOURNEYS_{name.upper()}", raising=False)
    assert all(getattr(Settings(), name) is None for name in secret_fields())
    monkeypatch.setenv("JOURNEYS_API_KEY", "from-the-environment")
    monkeypatch.setenv("JOURNEYS_SECRET_KEY", "signing-from-the-environment")
    settings = Settings()
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == "from-the-environment"
    assert secret_key(settings) == "signing-from-the-environment"


def test_printing_or_dumping_settings_shows_no_secret_value() -> None:
    values = {name: f"value-of-{name}-{id(name)}" for name in secret_fields()}
    settings = Settings(_env_file=None, **{k: SecretStr(v) for k, v in values.items()})  # type: ignore[call-arg]
    shown = [
        repr(settings),
        str(settings),
        f"{settings}",
        settings.model_dump_json(),
        str(settings.model_dump()),
        repr(settings.api_key),
    ]
    for value in values.values():
        assert all(value not in text for text in shown), value
    assert "**********" in repr(settings)


@pytest.mark.parametrize(
    "public_url", ["http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000/"]
)
def test_the_development_key_signs_links_that_stay_on_this_machine(
    public_url: str, tmp_path: Path
) -> None:
    settings = Settings(_env_file=None, public_url=public_url, data_dir=tmp_path)  # type: ignore[call-arg]
    assert signing_key(settings) == DEVELOPMENT_KEY
    assert delivery_policy(settings).secret_key == DEVELOPMENT_KEY


@pytest.mark.parametrize("public_url", ["https://mail.example.com", "http://10.0.0.5:8000"])
def test_links_that_leave_the_machine_need_a_real_key_or_nothing_starts(
    public_url: str, tmp_path: Path
) -> None:
    """Else anyone could POST /u/<make_token("dev-only-secret", victim, journey)>."""
    bare = Settings(_env_file=None, public_url=public_url, data_dir=tmp_path)  # type: ignore[call-arg]
    with pytest.raises(MissingSecretKey):
        signing_key(bare)
    with pytest.raises(MissingSecretKey):
        create_app(bare)
    with pytest.raises(MissingSecretKey):
        delivery_policy(bare)

    configured = bare.model_copy(update={"secret_key": SecretStr("a-real-key")})
    assert signing_key(configured) == "a-real-key"
    assert delivery_policy(configured).secret_key == "a-real-key"
    assert make_token("a-real-key", "u", "j") != make_token(DEVELOPMENT_KEY, "u", "j")
    (tmp_path / "secret_key").write_text("kept-by-journeys-dev\n")  # what `journeys dev` keeps
    assert signing_key(bare) == "kept-by-journeys-dev"


DATABASE_PASSWORD = "db-password-" + "7f3a9c"
DEAD_POSTGRES = f"postgresql+psycopg://journeys:{DATABASE_PASSWORD}@127.0.0.1:9/journeys"
"""Port 9 (discard): nothing listens, so connecting fails at once."""


def test_the_database_password_is_not_in_the_settings_repr() -> None:
    settings = Settings(_env_file=None, database_url=DEAD_POSTGRES)  # type: ignore[call-arg]
    assert DATABASE_PASSWORD not in repr(settings) and DATABASE_PASSWORD not in str(settings)


def test_a_command_that_cannot_reach_the_database_does_not_print_its_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JOURNEYS_DATABASE_URL", DEAD_POSTGRES)
    assert main(["report"]) == 1
    printed = capsys.readouterr()
    assert "cannot read the results at" in printed.err
    assert "127.0.0.1:9" in printed.err  # says where, not how to get in
    assert DATABASE_PASSWORD not in printed.err + printed.out
