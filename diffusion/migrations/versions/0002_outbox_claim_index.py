"""outbox: index claims by (edition, state)

Revision ID: 0002
Revises: 0001

A claim asks for the queued rows of some editions in id order. With only an index on
edition_id it read every row of the edition, sent ones included, to find the next batch:
claims in a 100,000-row send averaged 15 ms, growing as the send went on. (edition_id, state)
serves it directly, and replaces the index on edition_id alone.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_edition_state", ["edition_id", "state"], unique=False)
        batch_op.drop_index("ix_outbox_edition_id")


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_edition_id", ["edition_id"], unique=False)
        batch_op.drop_index("ix_outbox_edition_state")
