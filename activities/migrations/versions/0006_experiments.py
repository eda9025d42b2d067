"""A/B/n experiments: each run's variant (experiment_assignments), each automatic winner with
its figures (experiment_decisions), and the variant a message belongs to (outbox.variant).
Send-time optimisation: each event summary's counts per UTC hour (event_summaries.hours), and
the hour each message was timed for (outbox.send_hour, outbox.timing).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "experiment_assignments",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("experiment", sa.String(length=64), nullable=False),
        sa.Column("journey", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("variant", sa.String(length=64), nullable=False),
        sa.Column("group", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "experiment"),
    )
    op.create_index(
        "ix_experiment_assignments_journey_experiment",
        "experiment_assignments",
        ["journey", "experiment"],
    )
    op.create_table(
        "experiment_decisions",
        sa.Column("journey", sa.String(length=64), nullable=False),
        sa.Column("experiment", sa.String(length=64), nullable=False),
        sa.Column("winner", sa.String(length=64), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("p_value", sa.Float(), nullable=False),
        sa.Column("alpha", sa.Float(), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("journey", "experiment"),
    )
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("variant", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("send_hour", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("timing", sa.String(length=16), nullable=True))
    with op.batch_alter_table("event_summaries") as batch:
        batch.add_column(sa.Column("hours", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("event_summaries") as batch:
        batch.drop_column("hours")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("timing")
        batch.drop_column("send_hour")
        batch.drop_column("variant")
    op.drop_table("experiment_decisions")
    op.drop_index("ix_experiment_assignments_journey_experiment", "experiment_assignments")
    op.drop_table("experiment_assignments")
