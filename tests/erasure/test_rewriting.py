"""How the erasure rewrites text it keeps: the user's workflow IDs become the tombstone's, their
personal values `[erased]`, and nothing else changes, even for a user ID too short to search
for. And a table the erasure has no rule for keeps the user's rows under the tombstone."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, select

from activities.erasure import _renamed, _rewrite_rows, _scrubber
from workflows.identity import user_key


def test_workflow_ids_become_the_tombstones_and_personal_values_are_erased() -> None:
    scrub = _scrubber(
        _renamed("u7", "erased_t", ["cart_recovery"]), ["zebulon@example.test", "Quixote", "u7"]
    )
    assert scrub("cart_recovery:u7/run-1/3") == "cart_recovery:erased_t/run-1/3"
    assert scrub("550 mailbox ZEBULON@example.test unknown") == "550 mailbox [erased] unknown"
    assert scrub("Dear Quixote") == "Dear [erased]"
    # Too short to search for alone: "u7" inside other words is left as it is.
    assert scrub("frequency_cap u7x") == "frequency_cap u7x"


def test_a_long_user_id_and_its_hashed_key_are_replaced_anywhere() -> None:
    key = user_key("zq@example.test")
    scrub = _scrubber(_renamed("zq@example.test", "erased_t", []), [])
    assert scrub(f"refused zq@example.test ({key})") == "refused erased_t (erased_t)"


def test_a_table_without_a_rule_keeps_the_users_rows_under_the_tombstone(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    waits = Table(
        "waits",
        MetaData(),
        Column("key", String(255), primary_key=True),
        Column("run_id", String(64)),
        Column("user_id", String(255)),
        Column("note", String(255)),
        Column("n", Integer),
    )
    waits.create(engine)
    rows = [
        {"key": "cart_recovery:zq-1234/r1/1", "run_id": "r1", "user_id": "zq-1234",
         "note": "for zq-1234", "n": 1},
        {"key": "cart_recovery:other/r2/1", "run_id": "r2", "user_id": "other", "note": "x",
         "n": 2},
    ]  # fmt: skip
    scrub = _scrubber(_renamed("zq-1234", "erased_t", ["cart_recovery"]), ["zq-1234"])
    with engine.begin() as conn:
        conn.execute(waits.insert(), rows)
        assert _rewrite_rows(conn, waits, ("zq-1234", "erased_t"), ["r1"], scrub) == 1
        kept = [dict(r) for r in conn.execute(select(waits).order_by(waits.c.n)).mappings()]
    assert kept == [
        {"key": "cart_recovery:erased_t/r1/1", "run_id": "r1", "user_id": "erased_t",
         "note": "for erased_t", "n": 1},
        rows[1],
    ]  # fmt: skip
