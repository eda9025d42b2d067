"""Refused entries: triggers inside a journey's re-entry window, recorded now that a journey's
workflow closes at its outcome instead of staying open to refuse them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "journey_refusals",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("workflow_id", sa.String(length=255), nullable=False),
        sa.Column("journey", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=False),
        sa.Column("entry_event", sa.String(length=255), nullable=True),
        sa.Column("last_entered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("run_id"),
    )
    op.create_index(op.f("ix_journey_refusals_at"), "journey_refusals", ["at"], unique=False)
    op.create_index(
        op.f("ix_journey_refusals_journey"), "journey_refusals", ["journey"], unique=False
    )
    op.create_index(
        op.f("ix_journey_refusals_user_id"), "journey_refusals", ["user_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_journey_refusals_user_id"), table_name="journey_refusals")
    op.drop_index(op.f("ix_journey_refusals_journey"), table_name="journey_refusals")
    op.drop_index(op.f("ix_journey_refusals_at"), table_name="journey_refusals")
    op.drop_table("journey_refusals")
