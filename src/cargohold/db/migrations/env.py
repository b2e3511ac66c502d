from alembic import context

# The features register their tables on the shared metadata by being imported.
import cargohold.auth.tables
import cargohold.events.tables
import cargohold.jobs.tables
import cargohold.lifecycle.tables
import cargohold.management.tables
import cargohold.replication.tables
import cargohold.tasks.tables  # noqa: F401
from cargohold.db.engine import make_engine
from cargohold.db.tables import metadata

url = context.config.get_main_option("sqlalchemy.url")


def run_offline() -> None:
    context.configure(url=url, target_metadata=metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = make_engine(url)
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # Nodes starting together must not migrate at once; the lock ends with the session.
            connection.exec_driver_sql("SELECT pg_advisory_lock(4242)")
            connection.commit()
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
