"""The two databases the store runs on, for tests: a SQLite file, and a PostgreSQL schema.

PostgreSQL is the installed server (scripts/machine-setup prepares it), at
JOURNEYS_TEST_POSTGRES_URL. Each test gets its own schema (search_path points the store at it),
dropped afterwards, so tests and concurrent test runs never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError

POSTGRES_URL = os.environ.get(
    "JOURNEYS_TEST_POSTGRES_URL",
    "postgresql+psycopg://journeys:journeys@127.0.0.1:5432/journeys_test",
)
DATABASES = ("sqlite", "postgresql")


@cache
def _admin() -> Engine | str:
    """An autocommit engine on the test server, or why there is none (asked once per run)."""
    engine = create_engine(
        POSTGRES_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as err:
        engine.dispose()
        reason = str(err.orig).strip().splitlines()[0] if err.orig else str(err)
        return f"no PostgreSQL at {make_url(POSTGRES_URL)!r} ({reason})"
    return engine


def postgres_admin() -> Engine:
    """The admin engine; without a server, skips the test (fails it in CI)."""
    admin = _admin()
    if isinstance(admin, str):
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"{admin}: CI needs it; run scripts/machine-setup", pytrace=False)
        pytest.skip(f"{admin}; scripts/machine-setup prepares one")
    return admin


@contextmanager
def postgres_schema() -> Iterator[str]:
    """The URL of a new, empty schema on the test server; dropped (with its tables) after."""
    admin = postgres_admin()
    schema = f"test_{uuid.uuid4().hex[:16]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:  # a connection left in a transaction fails, never hangs
            conn.execute(text("SET lock_timeout = '10s'"))
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@contextmanager
def empty_database(kind: str, folder: Path) -> Iterator[str]:
    """The URL of an empty database of `kind` ("sqlite" or "postgresql")."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'journeys.db'}"
        return
    with postgres_schema() as url:
        yield url
