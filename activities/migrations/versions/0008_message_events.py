"""What happened to sent emails: opens and clicks through our pixel and redirect, bounces,
complaints and unsubscribes the ESPs report back (message_events), and an index on the
provider's message ID their webhooks find a message by.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "message_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("message_key", sa.String(length=96), nullable=True),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("journey", sa.String(length=64), nullable=True),
        sa.Column("step", sa.String(length=255), nullable=True),
        sa.Column("variant", sa.String(length=64), nullable=True),
        sa.Column("user_id", sa.String(length=255), nullable=True),
        sa.Column("url", sa.String(length=2000), nullable=True),
        sa.Column("detail", sa.String(length=64), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedupe_key"),
    )
    op.create_index(op.f("ix_message_events_at"), "message_events", ["at"])
    op.create_index(op.f("ix_message_events_message_key"), "message_events", ["message_key"])
    op.create_index(op.f("ix_message_events_run_id"), "message_events", ["run_id"])
    op.create_index(op.f("ix_message_events_user_id"), "message_events", ["user_id"])
    op.create_index("ix_message_events_journey_kind", "message_events", ["journey", "kind"])
    op.create_index("ix_outbox_provider_message_id", "outbox", ["provider_message_id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_provider_message_id", "outbox")
    op.drop_index("ix_message_events_journey_kind", "message_events")
    op.drop_index(op.f("ix_message_events_user_id"), "message_events")
    op.drop_index(op.f("ix_message_events_run_id"), "message_events")
    op.drop_index(op.f("ix_message_events_message_key"), "message_events")
    op.drop_index(op.f("ix_message_events_at"), "message_events")
    op.drop_table("message_events")
