"""national_commissions

Revision ID: 0009
Revises: 0007

The directory holds the National Commissions for UNESCO (country, contact, website), so that an
NGO's digest can list those of the countries it works in.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import diffusion.models

revision: str = "0009"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "national_commissions",
        sa.Column("country", sqlmodel.sql.sqltypes.AutoString(length=2), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("contact_name", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("website", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("updated_at", diffusion.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("country"),
    )


def downgrade() -> None:
    op.drop_table("national_commissions")
