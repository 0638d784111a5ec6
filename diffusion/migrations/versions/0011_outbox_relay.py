"""outbox: relay (which of the configured relays took each message)

Revision ID: 0011
Revises: 0010

smtp_url may list several relays; each sent row records the host:port of the one that took it,
so that a message can be traced at its relay.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("relay", sqlmodel.sql.sqltypes.AutoString(), nullable=True))


def downgrade() -> None:
    # In place (SQLite >= 3.35 drops a plain column), as 0010 does.
    with op.batch_alter_table("outbox", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("relay")
