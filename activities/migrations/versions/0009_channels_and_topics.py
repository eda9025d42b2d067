"""Channels beyond email and subscription topics: push devices (devices), a user's choice per
channel and topic (subscriptions), phone numbers that texted STOP (sms_opt_outs, hashed), and
the channels a message's channel choice passed over (outbox.passed_over).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("passed_over", sa.String(length=255), nullable=True))
    op.create_table(
        "devices",
        sa.Column("token", sa.String(length=1024), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token"),
    )
    op.create_index(op.f("ix_devices_user_id"), "devices", ["user_id"])
    op.create_table(
        "subscriptions",
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("subscribed", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "channel", "topic"),
    )
    op.create_table(
        "sms_opt_outs",
        sa.Column("phone_hash", sa.String(length=64), nullable=False),
        sa.Column("keyword", sa.String(length=16), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("phone_hash"),
    )


def downgrade() -> None:
    op.drop_table("sms_opt_outs")
    op.drop_table("subscriptions")
    op.drop_index(op.f("ix_devices_user_id"), "devices")
    op.drop_table("devices")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("passed_over")
