"""Alembic's environment: runs the migrations on the connection ``db.schema`` hands over in
``config.attributes["connection"]`` (already in a transaction, under the schema lock), or on an
engine made from ``sqlalchemy.url`` when Alembic's own command line is pointed here; in offline
mode (``--sql``) it prints the SQL for ``sqlalchemy.url``'s dialect instead (not for SQLite,
whose batch changes need to read the table).

Alembic loads this file by path and runs it; importing it as a module runs nothing.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from smart_attendance.db.tables import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,  # SQLite cannot ALTER constraints: autogenerate batch blocks
        compare_type=True,
    )
    with context.begin_transaction():  # nothing to begin when the caller holds one
        context.run_migrations()


def run_migrations() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection and no sqlalchemy.url in the Alembic configuration")
    if context.is_offline_mode():  # print the SQL for a database administrator (``--sql``)
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if not __name__.startswith("smart_attendance."):  # loaded by Alembic, not imported
    run_migrations()
