"""Alembic's environment for the journeys tables.

`activities.migrations` hands over an open connection (already locked and in a transaction),
so every migration of one upgrade commits together. From the `alembic` command line there is
none: the URL is alembic.ini's `sqlalchemy.url` if set, else JOURNEYS_DATABASE_URL.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

import activities.store  # noqa: F401  (defines the tables on SQLModel.metadata)

config = context.config
target_metadata = SQLModel.metadata


def _render_item(kind: str, item: Any, autogen_context: Any) -> str | bool:
    """Plain SQLAlchemy types in migration files, so old migrations never depend on SQLModel's
    type classes (AutoString is a String, UTCDateTime a DateTime with time zone)."""
    if kind != "type":
        return False
    if isinstance(item, AutoString):
        length = getattr(item.impl, "length", None)
        return f"sa.String(length={length})" if length else "sa.String()"
    if isinstance(item, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _options(connection: Connection | None = None, dialect: str = "") -> dict[str, Any]:
    """SQLite cannot ALTER most things: autogenerate writes batch (copy and move) operations."""
    name = connection.dialect.name if connection is not None else dialect
    return {
        "target_metadata": target_metadata,
        "render_as_batch": name == "sqlite",
        "render_item": _render_item,
    }


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from starter.settings import Settings

    return Settings().database_url


def run_offline() -> None:
    """`alembic upgrade --sql`: print the SQL instead of running it."""
    url = _url()
    context.configure(url=url, literal_binds=True, **_options(dialect=url.split(":", 1)[0]))
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, **_options(connection))
        with context.begin_transaction():
            context.run_migrations()
        return
    from activities.migrations import locked
    from activities.store import Store

    store = Store(_url())
    try:
        with locked(store.engine) as conn:
            context.configure(connection=conn, **_options(conn))
            with context.begin_transaction():
                context.run_migrations()
    finally:
        store.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
