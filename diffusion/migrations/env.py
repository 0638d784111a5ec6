"""Alembic environment: runs migrations on the URL db.upgrade() sets."""

from alembic import context
from sqlmodel import SQLModel

import diffusion.models  # noqa: F401  (registers the tables)
from diffusion.db import make_engine

url = context.config.get_main_option("sqlalchemy.url")
assert url, "db.upgrade() sets sqlalchemy.url"
target_metadata = SQLModel.metadata

if context.is_offline_mode():
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
