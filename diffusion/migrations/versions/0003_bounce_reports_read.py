"""bounce reports already read

Revision ID: 0003
Revises: 0002

An mbox keeps the reports it holds: without a record of what was read, each run counted every
soft bounce in it again. The key is the sha256 of the report's Message-ID (or of its bytes).
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import diffusion.models

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bounce_reports_read",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("read_at", diffusion.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("bounce_reports_read")
