"""Opens the store the config names: SQLite at `database`, or PostgreSQL (`store.postgres`)
with the DSN read from its file. Shared by the scheduler and `powerplane admin`."""

from __future__ import annotations

from scheduler.server.config import SchedulerConfig
from scheduler.store.base import Store


def open_store(config: SchedulerConfig, migrate: bool = True) -> Store:
    """The configured store, its schema migrated to the newest version unless `migrate` is
    False (then only a newer schema is refused). StoreError (one line) if it cannot open."""
    postgres = config.store.postgres
    if postgres is None:
        from scheduler.store.sqlite import SqliteStore

        return SqliteStore(config.database, migrate=migrate)
    from scheduler.store.postgres import PostgresStore

    return PostgresStore(postgres.read_dsn(), pool_size=postgres.pool_size, migrate=migrate)


def describe_store(config: SchedulerConfig) -> str:
    """The store for a log line: its kind and where, never the DSN."""
    postgres = config.store.postgres
    if postgres is None:
        return f"SQLite at {config.database}"
    return f"PostgreSQL (DSN from {postgres.dsn_file})"
