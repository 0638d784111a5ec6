"""sources: retry_not_before

Revision ID: 0004
Revises: 0003

A feed server answering 429 or 503 with Retry-After asks not to be fetched before a time:
collection keeps that time on the source and skips it until then.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import diffusion.models

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("retry_not_before", diffusion.models.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.drop_column("retry_not_before")
