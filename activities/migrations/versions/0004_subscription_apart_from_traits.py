"""Subscription state apart from traits: profiles.email_unsubscribed_at and _from. A profile
whose traits said "unsubscribed" (the old link wrote a trait) keeps that state in the column.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPT_OUT = ("unsubscribed", "email_unsubscribed")


def _truthy(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1", "y")
    return value is True or (type(value) is int and value == 1)


def upgrade() -> None:
    with op.batch_alter_table("profiles") as batch:
        batch.add_column(sa.Column("email_unsubscribed_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("email_unsubscribed_from", sa.String(length=255)))
    profiles = sa.table(
        "profiles",
        sa.column("user_id", sa.String()),
        sa.column("traits", sa.JSON()),
        sa.column("email_unsubscribed_at", sa.DateTime(timezone=True)),
        sa.column("email_unsubscribed_from", sa.String()),
    )
    conn = op.get_bind()
    now = datetime.now(UTC)
    for user_id, traits in conn.execute(sa.select(profiles.c.user_id, profiles.c.traits)):
        if isinstance(traits, dict) and any(_truthy(traits.get(k)) for k in OPT_OUT):
            source = traits.get("unsubscribed_from") or "identify"
            conn.execute(
                profiles.update()
                .where(profiles.c.user_id == user_id)
                .values(email_unsubscribed_at=now, email_unsubscribed_from=str(source)[:255])
            )


def downgrade() -> None:
    with op.batch_alter_table("profiles") as batch:
        batch.drop_column("email_unsubscribed_from")
        batch.drop_column("email_unsubscribed_at")
