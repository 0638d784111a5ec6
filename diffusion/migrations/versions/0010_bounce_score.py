"""people: last_bounce_at (the bounce score's clock)

Revision ID: 0010
Revises: 0009

Soft bounces add to a score (people.soft_bounces) that restarts after a quiet period, as
Mailman keeps it: the score needs the time of the last soft bounce counted. The status
"complained" came with 0005 (statuses are strings).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import diffusion.models

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("last_bounce_at", diffusion.models.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    # In place (SQLite >= 3.35 drops a plain column): copying `people` over would lose its
    # AUTOINCREMENT and trip the foreign keys that point at it.
    with op.batch_alter_table("people", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("last_bounce_at")
