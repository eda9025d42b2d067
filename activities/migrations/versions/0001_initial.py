"""The tables as SQLModel's create_all made them before migrations (the baseline).

A database that create_all made is stamped at this revision instead of running it.

Revision ID: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_receipts",
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("event", sa.String(length=200), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("routed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("message_id"),
    )
    op.create_index(
        op.f("ix_event_receipts_received_at"), "event_receipts", ["received_at"], unique=False
    )
    op.create_table(
        "event_summaries",
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("event", sa.String(length=200), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_properties", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "event"),
    )
    op.create_index(
        "ix_event_summaries_event_last_seen",
        "event_summaries",
        ["event", "last_seen"],
        unique=False,
    )
    op.create_table(
        "journey_control_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("journey", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_journey_control_log_journey"), "journey_control_log", ["journey"], unique=False
    )
    op.create_table(
        "journey_controls",
        sa.Column("journey", sa.String(length=64), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("journey"),
    )
    op.create_table(
        "journey_runs",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("workflow_id", sa.String(length=255), nullable=False),
        sa.Column("journey", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("group", sa.String(length=16), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("entry_event", sa.String(length=255), nullable=True),
        sa.Column("step", sa.String(length=255), nullable=False),
        sa.Column("messages_sent", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("outcome_reason", sa.String(length=255), nullable=True),
        sa.Column("outcome_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("goal_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revenue", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("run_id"),
    )
    op.create_index(
        op.f("ix_journey_runs_entered_at"), "journey_runs", ["entered_at"], unique=False
    )
    op.create_index(op.f("ix_journey_runs_journey"), "journey_runs", ["journey"], unique=False)
    op.create_index(
        "ix_journey_runs_journey_user_entered",
        "journey_runs",
        ["journey", "user_id", "entered_at"],
        unique=False,
    )
    op.create_index(op.f("ix_journey_runs_user_id"), "journey_runs", ["user_id"], unique=False)
    op.create_table(
        "journey_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("detail", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "seq", name="uq_journey_steps_run_seq"),
    )
    op.create_index(op.f("ix_journey_steps_run_id"), "journey_steps", ["run_id"], unique=False)
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("journey", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("template", sa.String(length=255), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("marketing", sa.Boolean(), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(), nullable=True),
        sa.Column("body_html", sa.String(), nullable=True),
        sa.Column("body_text", sa.String(), nullable=True),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("provider_message_id", sa.String(length=255), nullable=True),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("journey_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    op.create_index(op.f("ix_outbox_journey"), "outbox", ["journey"], unique=False)
    op.create_index(op.f("ix_outbox_journey_time"), "outbox", ["journey_time"], unique=False)
    op.create_index(op.f("ix_outbox_run_id"), "outbox", ["run_id"], unique=False)
    op.create_index(op.f("ix_outbox_user_id"), "outbox", ["user_id"], unique=False)
    op.create_table(
        "profiles",
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("traits", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_table(
        "user_aliases",
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("kind", "value"),
    )


def downgrade() -> None:
    op.drop_table("user_aliases")
    op.drop_table("profiles")
    op.drop_index(op.f("ix_outbox_user_id"), table_name="outbox")
    op.drop_index(op.f("ix_outbox_run_id"), table_name="outbox")
    op.drop_index(op.f("ix_outbox_journey_time"), table_name="outbox")
    op.drop_index(op.f("ix_outbox_journey"), table_name="outbox")
    op.drop_table("outbox")
    op.drop_index(op.f("ix_journey_steps_run_id"), table_name="journey_steps")
    op.drop_table("journey_steps")
    op.drop_index(op.f("ix_journey_runs_user_id"), table_name="journey_runs")
    op.drop_index("ix_journey_runs_journey_user_entered", table_name="journey_runs")
    op.drop_index(op.f("ix_journey_runs_journey"), table_name="journey_runs")
    op.drop_index(op.f("ix_journey_runs_entered_at"), table_name="journey_runs")
    op.drop_table("journey_runs")
    op.drop_table("journey_controls")
    op.drop_index(op.f("ix_journey_control_log_journey"), table_name="journey_control_log")
    op.drop_table("journey_control_log")
    op.drop_index("ix_event_summaries_event_last_seen", table_name="event_summaries")
    op.drop_table("event_summaries")
    op.drop_index(op.f("ix_event_receipts_received_at"), table_name="event_receipts")
    op.drop_table("event_receipts")
