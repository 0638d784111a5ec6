"""subscribers: last_bounce_at (the bounce score's clock)

Revision ID: 0006
Revises: 0004

Soft bounces add to a score (subscribers.soft_bounces) that restarts after a quiet period, as
Mailman keeps it: the score needs the time of the last soft bounce counted. The new status
"complained" needs no schema change (statuses are strings).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import diffusion.models

revision: str = "0006"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("last_bounce_at", diffusion.models.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_column("last_bounce_at")
