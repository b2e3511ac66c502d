from alembic import context

from cargohold.db.engine import make_engine
import cargohold.auth.tables  # noqa: F401  (registers the features' tables on the shared metadata)
import cargohold.events.tables  # noqa: F401
import cargohold.management.tables  # noqa: F401
from cargohold.db.tables import metadata

url = context.config.get_main_option("sqlalchemy.url")


def run_offline() -> None:
    context.configure(url=url, target_metadata=metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
