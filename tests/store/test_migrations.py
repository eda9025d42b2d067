"""Schema migrations on SQLite and PostgreSQL: the migrations build exactly the models' schema,
go down and up again, adopt a database the old create_all made, and refuse what they cannot
safely adopt."""

from __future__ import annotations

import re
import sqlite3
import threading
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from activities import migrations
from activities.store import Store
from starter.cli import main
from tests.store.databases import DATABASES, empty_database

ROOT = Path(__file__).resolve().parents[2]
BASELINE_TABLES = {
    "profiles", "journey_runs", "journey_steps", "outbox", "journey_controls",
    "journey_control_log", "event_receipts", "event_summaries", "user_aliases",
}  # fmt: skip
"""The tables create_all made before migrations (revision 0001)."""
TABLES = BASELINE_TABLES | {"journey_refusals", "catalog_products", "purchases"}  # 0002, 0003
TABLES |= {"erasures", "email_suppressions"}  # 0005
TABLES |= {"experiment_assignments", "experiment_decisions"}  # 0006
TABLES |= {"send_rates", "send_waits"}  # 0007
TABLES |= {"message_events"}  # 0008
TABLES |= {"devices", "subscriptions", "sms_opt_outs"}  # 0009


def create_all_before_migrations(store: Store) -> None:
    """What every version before migrations did: create_all, of the tables and columns it had
    then, which the baseline migration reproduces; without its migration history."""
    migrations.upgrade(store.engine, migrations.BASELINE)
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))
    assert tables(store) == BASELINE_TABLES


@pytest.fixture(params=DATABASES)
def empty(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A store on an empty database (no tables, no migration history)."""
    with empty_database(request.param, tmp_path) as url:
        db = Store(url)
        yield db
        db.dispose()


def must_match_the_models(store: Store) -> None:
    diffs = migrations.differences(store.engine)
    assert not diffs, (
        "write a migration: the models and the migrations disagree on "
        + ", ".join(migrations.describe(diff) for diff in diffs)
        + " (`journeys db revision 'what changed'` drafts one)"
    )


def tables(store: Store) -> set[str]:
    return set(inspect(store.engine).get_table_names())


def test_migrating_an_empty_database_gives_exactly_the_models_schema(empty):
    empty.migrate()
    assert migrations.current(empty.engine) == migrations.head()
    assert tables(empty) == TABLES | {"alembic_version"}
    must_match_the_models(empty)


def test_a_model_change_without_a_migration_is_caught(empty):
    empty.migrate()
    with empty.engine.begin() as conn:  # as if the model had gained a column no migration adds
        conn.execute(text("ALTER TABLE profiles DROP COLUMN email"))
    with pytest.raises(AssertionError, match=r"write a migration: .*add_column profiles\.email"):
        must_match_the_models(empty)


def test_downgrading_to_nothing_and_upgrading_again(empty):
    empty.migrate()
    empty.upsert_profile("u-1", email="u-1@example.test")
    migrations.downgrade(empty.engine, "base")
    assert tables(empty) <= {"alembic_version"}
    assert migrations.current(empty.engine) is None
    empty.migrate()
    must_match_the_models(empty)
    assert empty.get_profile("u-1") is None  # down to nothing means nothing kept


def test_migrating_again_changes_nothing_and_keeps_the_data(empty):
    empty.migrate()
    empty.upsert_profile("u-1", traits={"plan": "pro"})
    empty.migrate()
    assert empty.get_profile("u-1").traits == {"plan": "pro"}


def test_a_database_the_old_create_all_made_is_adopted_with_its_data(empty):
    create_all_before_migrations(empty)
    with empty.engine.begin() as conn:  # a profile the old version wrote
        conn.execute(
            text(
                "INSERT INTO profiles (user_id, email, traits, updated_at) "
                "VALUES ('u-old', 'old@example.test', :traits, :now)"
            ),
            {"traits": '{"plan": "pro"}', "now": "2026-11-01 10:00:00"},
        )
    empty.migrate()
    assert migrations.current(empty.engine) == migrations.head()
    must_match_the_models(empty)
    kept = empty.get_profile("u-old")
    assert (kept.email, kept.traits) == ("old@example.test", {"plan": "pro"})


def test_an_older_create_all_database_that_lacks_a_column_is_refused_untouched(empty):
    create_all_before_migrations(empty)
    with empty.engine.begin() as conn:  # a version from before journey_runs had revenue
        conn.execute(text("ALTER TABLE journey_runs DROP COLUMN revenue"))
    with pytest.raises(migrations.SchemaError, match=r"column journey_runs\.revenue is missing"):
        empty.migrate()
    assert "alembic_version" not in tables(empty)  # nothing stamped, nothing half-done


def test_a_database_migrated_by_a_newer_version_is_refused_with_the_reason(empty):
    empty.migrate()
    with empty.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(migrations.SchemaError, match=r"'9999'.*newer version"):
        empty.migrate()


def test_processes_starting_together_migrate_once(empty):
    """Workers and the API may all start at once on an empty database: each gets its turn."""
    replicas = [Store(empty.url) for _ in range(4)]
    try:
        with ThreadPoolExecutor(len(replicas)) as pool:
            list(pool.map(Store.migrate, replicas))  # raises if any of them failed
    finally:
        for replica in replicas:
            replica.dispose()
    assert migrations.current(empty.engine) == migrations.head()
    must_match_the_models(empty)


def test_a_store_opening_a_sqlite_file_another_process_is_writing_waits_its_turn(tmp_path):
    """A file still in rollback mode, with another connection's write under way (a second
    process migrating it): switching it to WAL must wait for that write, as any statement
    would, not fail at once with "database is locked"."""
    path = tmp_path / "journeys.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE other_process (x)")
    writer.execute("BEGIN IMMEDIATE")  # its write lock, in rollback mode
    writer.execute("INSERT INTO other_process VALUES (1)")
    holding = threading.Timer(0.5, lambda: writer.execute("COMMIT"))
    holding.start()
    store = Store(f"sqlite:///{path}")
    try:
        store.migrate()
        holding.join()
        assert migrations.current(store.engine) == migrations.head()
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("SELECT x FROM other_process").scalar() == 1
    finally:
        holding.cancel()
        store.dispose()
        writer.close()


def test_the_db_command_upgrades_reports_and_checks(empty, monkeypatch, capsys):
    monkeypatch.setenv("JOURNEYS_DATABASE_URL", empty.url)
    head = migrations.head()

    assert main(["db", "check"]) == 1
    assert "run `journeys db upgrade`" in capsys.readouterr().err
    assert main(["db", "upgrade"]) == 0
    assert f"no migrations -> {head}" in capsys.readouterr().out
    assert main(["db", "current"]) == 0
    assert f"{head} (up to date)" in capsys.readouterr().out
    assert main(["db", "check"]) == 0
    assert "matches the models" in capsys.readouterr().out
    assert "journeys:journeys@" not in empty.engine.url.render_as_string(hide_password=True)

    with empty.engine.begin() as conn:
        conn.execute(text("ALTER TABLE outbox DROP COLUMN read_at"))
    assert main(["db", "check"]) == 1
    assert "add_column outbox.read_at" in capsys.readouterr().err


def test_a_drafted_migration_continues_the_numbering_and_is_empty_when_nothing_changed(tmp_path):
    path = migrations.revision("nothing changed", directory=tmp_path)
    head = int(migrations.head())
    assert path.parent == tmp_path and path.name.startswith(f"{head + 1:04d}_nothing_changed")
    source = path.read_text()
    assert re.search(rf"down_revision: str \| None = [\"']{head:04d}[\"']", source), source
    upgrade = source.split("def upgrade() -> None:", 1)[1].split("def downgrade", 1)[0]
    code = [line.strip() for line in upgrade.splitlines() if line.strip()]
    assert [line for line in code if not line.startswith("#")] == ["pass"]


def test_migrations_ship_in_the_installed_package():
    """packages.find only takes folders with __init__.py; other files need package-data."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "activities*" in config["packages"]["find"]["include"]
    data = config.get("package-data", {}).get("activities.migrations", [])
    folder = ROOT / "activities" / "migrations"
    for path in folder.rglob("*"):
        if path.is_dir() and path.name != "__pycache__":
            assert (path / "__init__.py").exists(), f"{path} would not ship: add __init__.py"
        elif path.is_file() and path.suffix not in (".py", ".pyc"):
            assert str(path.relative_to(folder)) in data, f"{path.name} is not package data"
    assert (folder / "script.py.mako").exists()
    assert (folder / "__init__.py").exists() and (folder / "versions" / "__init__.py").exists()


def test_an_unsubscribe_kept_in_traits_moves_apart_from_them(empty):
    """The old unsubscribe link wrote a trait, which any identify could overwrite; 0004 keeps
    that state in its own column, and later identifies cannot clear it."""
    migrations.upgrade(empty.engine, "0003")
    with empty.engine.begin() as conn:
        for user, traits in (
            ("u-link", '{"unsubscribed": true, "unsubscribed_from": "cart_recovery"}'),
            ("u-string", '{"email_unsubscribed": "true"}'),
            ("u-subscribed", '{"unsubscribed": false, "plan": "pro"}'),
        ):
            conn.execute(
                text(
                    "INSERT INTO profiles (user_id, email, traits, updated_at) "
                    "VALUES (:user, NULL, :traits, '2026-11-01 10:00:00')"
                ),
                {"user": user, "traits": traits},
            )
    empty.migrate()
    assert empty.get_profile("u-link").email_unsubscribed_from == "cart_recovery"
    assert empty.get_profile("u-string").email_unsubscribed_at is not None
    assert empty.get_profile("u-subscribed").email_unsubscribed_at is None

    empty.upsert_profile("u-link", traits={"unsubscribed": False})  # an identify cannot undo it
    assert empty.get_profile("u-link").email_unsubscribed_at is not None
    empty.set_subscription("u-link", subscribed=True, source="api")  # the explicit call can
    assert empty.get_profile("u-link").email_unsubscribed_at is None
