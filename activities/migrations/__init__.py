"""Schema migrations (Alembic), shipped inside the package so an installed image can migrate.

Everything here works from an Engine: no alembic.ini, no working directory. An upgrade holds a
lock for its whole transaction (PostgreSQL: an advisory lock per schema; SQLite: BEGIN
IMMEDIATE), so processes that start together migrate once and the rest find the schema current.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger("journeys.migrations")

MIGRATIONS = Path(__file__).resolve().parent
BASELINE = "0001"
"""The first migration: the schema `SQLModel.metadata.create_all` made before migrations."""

_LOCK_CLASS = 0x6A6F75  # "jou": the advisory-lock class of journeys migrations


class SchemaError(RuntimeError):
    """The database cannot be migrated as it is; the message says what to do."""


def config(connection: Connection | None = None, url: str | None = None) -> Config:
    """An Alembic Config for our migrations, on `connection` (or `url`, for the CLI)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@cache
def scripts() -> ScriptDirectory:
    """The migration files (read once per process)."""
    return ScriptDirectory.from_config(config())


def head() -> str:
    """The newest revision this code knows."""
    revision = scripts().get_current_head()
    assert revision is not None
    return revision


@contextmanager
def locked(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that holds the migration lock; commits on success."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(
                text("SELECT pg_advisory_xact_lock(:cls, hashtext(current_schema()))"),
                {"cls": _LOCK_CLASS},
            )
        elif engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # waits (busy_timeout) for other writers
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()


def current(engine: Engine) -> str | None:
    """The database's revision; None if it has never been migrated."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade to `revision`, first adopting a database that create_all made."""
    with locked(engine) as conn:
        known = _known_revision(conn)
        if known is None:
            _adopt(conn)
        command.upgrade(config(conn), revision)
        now = MigrationContext.configure(conn).get_current_revision()
    if now != known:
        log.info("migrated the database from %s to %s", known or "nothing", now)


def downgrade(engine: Engine, revision: str) -> None:
    """Downgrade to `revision` ("base" drops every table): for tests and rollbacks."""
    with locked(engine) as conn:
        command.downgrade(config(conn), revision)


def differences(engine: Engine) -> list[Any]:
    """What the database lacks (or has extra) against the models; empty when they agree."""
    from sqlmodel import SQLModel

    import activities.store  # noqa: F401  (defines the tables)

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(context, SQLModel.metadata)
    return [diff for diff in diffs if not _is_alembic_own(diff)]


def describe(diff: Any) -> str:
    """One of `differences` in words: the operation a migration needs, and on what."""
    if isinstance(diff, list):  # changes to one column come grouped
        return "; ".join(describe(change) for change in diff)
    operation = diff[0]
    if operation in ("add_column", "remove_column"):
        return f"{operation} {diff[2]}.{diff[3].name}"
    if operation.startswith("modify_"):
        return f"{operation} {diff[2]}.{diff[3]}: {diff[-2]!r} -> {diff[-1]!r}"
    return f"{operation} {getattr(diff[1], 'name', diff[1])}"


def revision(message: str, directory: Path | None = None) -> Path:
    """Draft the next migration: what the models have that the newest migration lacks.

    Autogenerated against a scratch SQLite database at head, so no server need be running;
    read it before committing (a rename comes out as a drop and an add). `directory`: write
    there instead of the package's versions folder.
    """
    revisions = ScriptDirectory.from_config(config()).walk_revisions()
    number = max(int(re.match(r"\d+", r.revision)[0]) for r in revisions)  # type: ignore[index]
    with tempfile.TemporaryDirectory() as folder:
        engine = create_engine(f"sqlite:///{Path(folder) / 'scratch.db'}")
        try:
            upgrade(engine)
            with locked(engine) as conn:
                cfg = config(conn)
                if directory is not None:
                    cfg.set_main_option(
                        "version_locations", f"{MIGRATIONS / 'versions'} {directory}"
                    )
                script = command.revision(
                    cfg,
                    message,
                    autogenerate=True,
                    rev_id=f"{number + 1:04d}",
                    version_path=str(directory) if directory is not None else None,
                )
        finally:
            engine.dispose()
    assert script is not None and not isinstance(script, list)
    _tidy(Path(script.path))
    return Path(script.path)


def _tidy(path: Path) -> None:
    """Format a drafted migration with ruff, when ruff is installed (development)."""
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if Path(ruff).exists():
        subprocess.run([ruff, "check", "--fix", "-q", str(path)], check=False)
        subprocess.run([ruff, "format", "-q", str(path)], check=False)


def _known_revision(conn: Connection) -> str | None:
    revision_ = MigrationContext.configure(conn).get_current_revision()
    if revision_ is not None:
        try:
            scripts().get_revision(revision_)
        except CommandError as err:
            raise SchemaError(
                f"the database is at revision {revision_!r}, which this code does not know: "
                "it was migrated by a newer version; run that version (or downgrade with it)"
            ) from err
    return revision_


def _adopt(conn: Connection) -> None:
    """Stamp a create_all database at the baseline, if it is exactly the baseline's tables."""
    inspector = inspect(conn)
    if not set(inspector.get_table_names()) & _model_tables():
        return  # empty (or only other applications' tables): migrate from the start
    expected = _baseline_shape()
    present = set(inspector.get_table_names()) & set(expected)
    found = {table: _columns(inspector, table) for table in present}
    problems = [f"table {t} is missing" for t in sorted(set(expected) - present)]
    for table in sorted(present):
        missing = sorted(expected[table] - found[table])
        extra = sorted(found[table] - expected[table])
        problems += [f"column {table}.{c} is missing" for c in missing]
        problems += [f"column {table}.{c} is not in the first migration" for c in extra]
    if problems:
        raise SchemaError(
            "this database has journeys tables but no migration history, and they differ from "
            f"the first migration ({BASELINE}): {'; '.join(problems)}. Bring them in line by "
            "hand (then run `journeys db upgrade`), or start from an empty database."
        )
    command.stamp(config(conn), BASELINE)
    log.info("adopted the tables create_all made as migration %s", BASELINE)


def _model_tables() -> set[str]:
    from sqlmodel import SQLModel

    import activities.store  # noqa: F401  (defines the tables)

    return set(SQLModel.metadata.tables)


@cache
def _baseline_shape() -> dict[str, frozenset[str]]:
    """Each table's columns as the baseline migration creates them (run on in-memory SQLite)."""
    engine = create_engine("sqlite://")
    try:
        with engine.begin() as conn:
            command.upgrade(config(conn), BASELINE)
            inspector = inspect(conn)
            return {
                table: _columns(inspector, table)
                for table in inspector.get_table_names()
                if table != "alembic_version"
            }
    finally:
        engine.dispose()


def _columns(inspector: Any, table: str) -> frozenset[str]:
    return frozenset(column["name"] for column in inspector.get_columns(table))


def _is_alembic_own(diff: Any) -> bool:
    """The version table is Alembic's, not a model's."""
    return (
        isinstance(diff, tuple)
        and diff[0] == "remove_table"
        and getattr(diff[1], "name", None) == "alembic_version"
    )
