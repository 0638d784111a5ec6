"""outbox: claims walk (edition, state, id), so a batch is read in order and nothing more

Revision ID: 0007
Revises: 0005

A claim takes the first queued rows of an edition in id order. On SQLite the index on
(edition_id, state) carries the rowid, which is the id, so it serves that order. A PostgreSQL
index does not: each claim read and sorted every queued row of the edition (98,500 rows, 30 ms,
spilling to disk, at the start of a 100,000-row send), so that a send took time growing with
the square of its size. With id in the index the claim reads its batch and stops.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_edition_state_id", ["edition_id", "state", "id"], unique=False
        )
        batch_op.drop_index("ix_outbox_edition_state")


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_edition_state", ["edition_id", "state"], unique=False)
        batch_op.drop_index("ix_outbox_edition_state_id")
