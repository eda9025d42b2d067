"""Settings, from environment variables (JOURNEYS_* and TEMPORAL_*) or a .env file."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the API, the worker and `journeys dev` read; secrets never printed."""

    model_config = SettingsConfigDict(env_prefix="JOURNEYS_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///data/journeys.db"
    api_key: SecretStr | None = None
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    data_dir: Path = Path("data")
    task_queue: str = "journeys"
    journey_modules: list[str] = ["workflows.journeys"]
    temporal_address: str = Field(
        "localhost:7233",
        validation_alias=AliasChoices("TEMPORAL_ADDRESS", "JOURNEYS_TEMPORAL_ADDRESS"),
    )
    temporal_namespace: str = Field(
        "default",
        validation_alias=AliasChoices("TEMPORAL_NAMESPACE", "JOURNEYS_TEMPORAL_NAMESPACE"),
    )
    temporal_ui_port: int = 8233
