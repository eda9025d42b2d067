"""Per-day event counts on event summaries (templates' `activity(...)` over a window), why a
held-out run is held out (the programme's global holdout), and send rates with the sends that
wait their turn (a journey's `send_rate`, and the priority rule of the frequency cap).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "send_rates",
        sa.Column("journey", sa.String(length=64), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("journey"),
    )
    op.create_table(
        "send_waits",
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("journey", sa.String(length=64), nullable=False),
        sa.Column("template", sa.String(length=255), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("marketing", sa.Boolean(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("throttled", sa.Integer(), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key_hash"),
    )
    op.create_index(op.f("ix_send_waits_due_at"), "send_waits", ["due_at"], unique=False)
    op.create_index(op.f("ix_send_waits_journey"), "send_waits", ["journey"], unique=False)
    op.create_index(op.f("ix_send_waits_run_id"), "send_waits", ["run_id"], unique=False)
    with op.batch_alter_table("event_summaries") as batch:
        batch.add_column(sa.Column("daily", sa.JSON(), nullable=True))
    with op.batch_alter_table("journey_runs") as batch:
        batch.add_column(sa.Column("holdout_reason", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("journey_runs") as batch:
        batch.drop_column("holdout_reason")
    with op.batch_alter_table("event_summaries") as batch:
        batch.drop_column("daily")
    op.drop_index(op.f("ix_send_waits_run_id"), table_name="send_waits")
    op.drop_index(op.f("ix_send_waits_journey"), table_name="send_waits")
    op.drop_index(op.f("ix_send_waits_due_at"), table_name="send_waits")
    op.drop_table("send_waits")
    op.drop_table("send_rates")
