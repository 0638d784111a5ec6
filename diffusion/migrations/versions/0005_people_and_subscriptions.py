"""people and subscriptions

Revision ID: 0005
Revises: 0004

A subscriber was one address with one subscription. Every subscriber becomes a person with
the same id (so that outbox rows, which name it, and links already mailed stay valid) holding
one subscription: pending stays pending, unsubscribed becomes a left subscription of an
unsubscribed person, bounced a bounced person. Each conversion is written down as a consent
event. People's ids are never reused afterwards (AUTOINCREMENT on SQLite, the sequence moved
past the highest id on PostgreSQL). Erased addresses are kept as keyed hashes (suppressions).
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import diffusion.models

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The outbox's foreign key was created unnamed: SQLite batch mode finds it by this convention,
# PostgreSQL named it so itself.
_FK_CONVENTION = {"fk": "%(table_name)s_%(column_0_name)s_fkey"}
_OUTBOX_FK = "outbox_subscriber_id_fkey"


def _string(length: int | None = None) -> sa.types.TypeEngine[str]:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "people",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", _string(), nullable=False),
        sa.Column("name", _string(), nullable=False),
        sa.Column("language", _string(), nullable=False),
        sa.Column("status", _string(), nullable=False),
        sa.Column("soft_bounces", sa.Integer(), nullable=False),
        sa.Column("consent_at", diffusion.models.UTCDateTime(), nullable=True),
        sa.Column("status_changed_at", diffusion.models.UTCDateTime(), nullable=False),
        sa.Column("created_at", diffusion.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_people_email"), ["email"], unique=True)
        batch_op.create_index(batch_op.f("ix_people_status"), ["status"], unique=False)
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("audience", _string(), nullable=False),
        sa.Column("key", _string(), nullable=False),
        sa.Column("sectors", sa.JSON(), nullable=False),
        sa.Column("themes", sa.JSON(), nullable=False),
        sa.Column("regions", sa.JSON(), nullable=False),
        sa.Column("cadence", _string(), nullable=False),
        sa.Column("status", _string(), nullable=False),
        sa.Column("status_changed_at", diffusion.models.UTCDateTime(), nullable=False),
        sa.Column("created_at", diffusion.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("person_id", "audience", "key"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_subscriptions_audience"), ["audience"], unique=False)
        batch_op.create_index(batch_op.f("ix_subscriptions_person_id"), ["person_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_subscriptions_status"), ["status"], unique=False)
    op.create_table(
        "consent_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=True),
        sa.Column("at", diffusion.models.UTCDateTime(), nullable=False),
        sa.Column("action", _string(40), nullable=False),
        sa.Column("from_status", _string(), nullable=False),
        sa.Column("to_status", _string(), nullable=False),
        sa.Column("origin", _string(20), nullable=False),
        sa.Column("detail", _string(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("consent_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consent_events_person_id"), ["person_id"], unique=False)
    op.create_table(
        "suppressions",
        sa.Column("address_hash", _string(64), nullable=False),
        sa.Column("reason", _string(), nullable=False),
        sa.Column("at", diffusion.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("address_hash"),
    )

    # Every subscriber, as a person with the same id and one subscription.
    op.execute(
        "INSERT INTO people (id, email, name, language, status, soft_bounces, consent_at, "
        "status_changed_at, created_at) "
        "SELECT id, email, name, language, status, soft_bounces, consent_at, "
        "status_changed_at, created_at FROM subscribers"
    )
    op.execute(
        "INSERT INTO subscriptions (person_id, audience, key, sectors, themes, regions, cadence, "
        "status, status_changed_at, created_at) "
        "SELECT id, audience, key, sectors, themes, regions, cadence, "
        "CASE status WHEN 'pending' THEN 'pending' WHEN 'unsubscribed' THEN 'left' "
        "ELSE 'active' END, status_changed_at, created_at FROM subscribers ORDER BY id"
    )
    op.execute(
        "INSERT INTO consent_events (person_id, subscription_id, at, action, from_status, "
        "to_status, origin, detail) "
        "SELECT s.person_id, s.id, s.status_changed_at, 'migrated', '', p.status, 'migration', "
        "'subscriber ' || CAST(s.person_id AS VARCHAR) || ' of revision 0004' "
        "FROM subscriptions s JOIN people p ON p.id = s.person_id"
    )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(
            "SELECT setval(pg_get_serial_sequence('people', 'id'), "
            "GREATEST((SELECT MAX(id) FROM people), 1), (SELECT MAX(id) FROM people) IS NOT NULL)"
        )

    with op.batch_alter_table("outbox", schema=None, naming_convention=_FK_CONVENTION) as batch_op:
        batch_op.drop_constraint(_OUTBOX_FK, type_="foreignkey")
        batch_op.create_foreign_key(_OUTBOX_FK, "people", ["subscriber_id"], ["id"])
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscribers_status"))
        batch_op.drop_index(batch_op.f("ix_subscribers_email"))
        batch_op.drop_index(batch_op.f("ix_subscribers_audience"))
    op.drop_table("subscribers")


def downgrade() -> None:
    # One subscriber per person, with their first subscription: the others are lost.
    op.create_table(
        "subscribers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", _string(), nullable=False),
        sa.Column("name", _string(), nullable=False),
        sa.Column("language", _string(), nullable=False),
        sa.Column("audience", _string(), nullable=False),
        sa.Column("key", _string(), nullable=False),
        sa.Column("sectors", sa.JSON(), nullable=False),
        sa.Column("themes", sa.JSON(), nullable=False),
        sa.Column("regions", sa.JSON(), nullable=False),
        sa.Column("cadence", _string(), nullable=False),
        sa.Column("status", _string(), nullable=False),
        sa.Column("soft_bounces", sa.Integer(), nullable=False),
        sa.Column("consent_at", diffusion.models.UTCDateTime(), nullable=True),
        sa.Column("status_changed_at", diffusion.models.UTCDateTime(), nullable=False),
        sa.Column("created_at", diffusion.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_subscribers_audience"), ["audience"], unique=False)
        batch_op.create_index(batch_op.f("ix_subscribers_email"), ["email"], unique=True)
        batch_op.create_index(batch_op.f("ix_subscribers_status"), ["status"], unique=False)
    op.execute(
        "INSERT INTO subscribers (id, email, name, language, audience, key, sectors, themes, "
        "regions, cadence, status, soft_bounces, consent_at, status_changed_at, created_at) "
        "SELECT p.id, p.email, p.name, p.language, s.audience, s.key, s.sectors, s.themes, "
        "s.regions, s.cadence, CASE WHEN p.status = 'complained' THEN 'unsubscribed' "
        "WHEN s.status = 'left' THEN 'unsubscribed' ELSE p.status END, p.soft_bounces, "
        "p.consent_at, p.status_changed_at, p.created_at FROM people p JOIN subscriptions s "
        "ON s.id = (SELECT MIN(id) FROM subscriptions WHERE person_id = p.id)"
    )
    # Outbox rows of people without a subscription cannot be kept.
    op.execute("DELETE FROM outbox WHERE subscriber_id NOT IN (SELECT id FROM subscribers)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "SELECT setval(pg_get_serial_sequence('subscribers', 'id'), "
            "GREATEST((SELECT MAX(id) FROM subscribers), 1), "
            "(SELECT MAX(id) FROM subscribers) IS NOT NULL)"
        )
    with op.batch_alter_table("outbox", schema=None, naming_convention=_FK_CONVENTION) as batch_op:
        batch_op.drop_constraint(_OUTBOX_FK, type_="foreignkey")
        batch_op.create_foreign_key(_OUTBOX_FK, "subscribers", ["subscriber_id"], ["id"])
    op.drop_table("suppressions")
    with op.batch_alter_table("consent_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_events_person_id"))
    op.drop_table("consent_events")
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscriptions_status"))
        batch_op.drop_index(batch_op.f("ix_subscriptions_person_id"))
        batch_op.drop_index(batch_op.f("ix_subscriptions_audience"))
    op.drop_table("subscriptions")
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_people_status"))
        batch_op.drop_index(batch_op.f("ix_people_email"))
    op.drop_table("people")
